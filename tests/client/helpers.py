"""Helpers of the client and CLI tests: running the CLI, waiting on a job's stream."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import Any

from typer.testing import CliRunner

from agentjobs.client import JobClient
from agentjobs.client.cli import app
from agentjobs.server.payments.sandbox.clock import JumpingClock
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2

AGENTJOBS = Path(sys.executable).parent / "agentjobs"
# The developer's shell must not leak into the tests; a wide terminal keeps table rows
# (amounts, ids) on one line each.
CLEAN_ENV: dict[str, str | None] = {
    "AGENTJOBS_TARGET": None,
    "AGENTJOBS_TOKEN": None,
    "AGENTJOBS_TLS": None,
    "AGENTJOBS_CA_FILE": None,
    "AGENTJOBS_CERT_FILE": None,
    "AGENTJOBS_KEY_FILE": None,
    "AGENTJOBS_DEBUG": None,
    "COLUMNS": "240",
}


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: object, env: Mapping[str, str | None] | None = None) -> CliResult:
    result = CliRunner().invoke(app, [str(a) for a in args], env={**CLEAN_ENV, **(env or {})})
    return CliResult(result.exit_code, result.stdout, result.stderr)


def assert_ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}: {result.err}{result.out}"
    assert result.err == ""
    return result


def assert_one_error_line(result: CliResult, code: int, *fragments: str) -> str:
    """The error contract: the documented exit code, one `error:` line, no traceback."""
    assert result.code == code, f"exit {result.code} != {code}: {result.err!r} {result.out!r}"
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in line, line
    return line


def wait_for_status(client: JobClient, job_id: str, status: int, timeout: float = 20) -> None:
    """Follows the job's stream until it reaches `status` (the stream's deadline bounds it)."""
    for update in client.watch(job_id, timeout=timeout):
        if update.job.status == status:
            return
    raise AssertionError(f"job {job_id} ended without reaching {jobs_pb2.JobStatus.Name(status)}")


class LineReader:
    """The lines a subprocess writes, read by a thread, so a test waits on one with a
    timeout instead of blocking on the pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._stream = process.stdout
        self._lines: Queue[str] = Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self._stream:
            self._lines.put(line)
        self._lines.put("")  # end of stream

    def wait_for(self, fragment: str, timeout: float = 20) -> str:
        while True:
            line = self._lines.get(timeout=timeout)
            self.seen.append(line)
            if not line:
                raise AssertionError(f"stream ended before {fragment!r}: {''.join(self.seen)}")
            if fragment in line:
                return line

    def rest(self, timeout: float = 20) -> str:
        while True:
            line = self._lines.get(timeout=timeout)
            if not line:
                return "".join(self.seen)
            self.seen.append(line)


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def run_in_terminal(
    *args: object,
    columns: int,
    env: Mapping[str, str | None] | None = None,
    lines: int = 60,
    timeout: float = 60,
) -> CliResult:
    """The real `agentjobs` entry point in a pseudo-terminal of `columns` x `lines`
    (the size set on the terminal and in COLUMNS / LINES, as a shell would): what a
    person sees, escape codes removed. stdout and stderr share the terminal."""
    merged = {**os.environ, **CLEAN_ENV, **(env or {})}
    merged.update({"COLUMNS": str(columns), "LINES": str(lines), "TERM": "xterm-256color"})
    merged.pop("NO_COLOR", None)
    parent, child = os.openpty()
    try:
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        process = subprocess.Popen(
            [str(AGENTJOBS), *map(str, args)],
            stdin=child,
            stdout=child,
            stderr=child,
            env={k: v for k, v in merged.items() if v is not None},
            close_fds=True,
        )
    finally:
        os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"agentjobs {args} did not finish within {timeout}s")
            ready, _, _ = select.select([parent], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(parent)
    text = ANSI_ESCAPE.sub("", b"".join(chunks).decode("utf-8", errors="replace"))
    return CliResult(code, text.replace("\r\n", "\n"), "")


# -- what a person sees --------------------------------------------------------------
BOX_VERTICALS = "│┃"
NARROWEST_COLUMN = 3


def table_cells(line: str) -> list[str]:
    return re.split(f"[{BOX_VERTICALS}]", line)[1:-1]


def assert_reads_well(shown: str, width: int, ids: set[str], words: set[str]) -> None:
    lines = shown.splitlines()
    assert lines, "nothing shown"
    for line in lines:
        assert len(line) <= width, f"wider than {width}: {line!r}"
    for identifier in ids:
        assert any(identifier in line for line in lines), f"{identifier} not whole: {shown}"
    text_of_cells = "\n".join(" ".join(table_cells(line)) or line for line in lines)
    for word in words:
        assert word in text_of_cells or word in shown, f"{word!r} split or missing:\n{shown}"
    for line in lines:
        if line[:1] and line[0] in "┏┌":  # a table's top border: one segment per column
            for segment in re.split("[┳┬]", line[1:-1]):
                assert len(segment) >= NARROWEST_COLUMN + 2, f"a sliver of a column: {line}"


# -- the chain's time ----------------------------------------------------------------
def sandbox_books(**overrides: Any) -> dict[str, Any]:
    """server_in_thread() options for books tests: the buyer pays only when told, the
    chain's jobs run at once, the sandbox's clock can jump to a payment's unlock time,
    and a buyer never takes an unfinished job's funds back by themselves."""
    return {
        "sandbox_lock_after_s": 3600,
        "shutdown_grace_s": 0.2,
        "sandbox_clock": JumpingClock(),
        **overrides,
    }


def quick_chain(server: ThreadedServer) -> None:
    timing = server.sandbox.timing
    timing.lock_after_s = None  # not even after a jump of the clock
    timing.confirm_after_s = 0.05
    timing.job_interval_s = 0.05
    timing.buyer_auto_refund = False


def collect_earnings(server: ThreadedServer, blockchain_identifier: str) -> None:
    """Jump the sandbox's clock past the payment's unlock time (+ the 10 minutes the
    seller's withdrawal waits): it is Withdrawn, and the monitor has seen it. Payments
    asked for after this are refused by the sandbox (their payByTime lies in its past),
    so call it once the books have every other job."""
    sandbox = server.sandbox

    async def withdraw() -> None:
        async with asyncio.timeout(20):
            await sandbox.wait_for(blockchain_identifier, on_chain_state="ResultSubmitted")
            clock = sandbox.clock
            assert isinstance(clock, JumpingClock)
            unlock_ms = int(sandbox.payment(blockchain_identifier)["unlockTime"])
            clock.jump((unlock_ms - clock.now_ms()) / 1000 + 11 * 60)
            await sandbox.wait_for(blockchain_identifier, on_chain_state="Withdrawn")
            monitor = server.running.app.monitor
            assert monitor is not None
            await monitor.poll_once()

    server.call(withdraw())
