"""What every benchmark shares: child processes (our server, the masumi SDK's reference
server, the bare gRPC ceiling), the in-process sandbox payment service, the load tools
(h2load, wrk), /proc readings and small statistics.

Every server runs in a process of its own and the load generator in another, so they
compete for the machine's cores the way a deployment's would. Children are stopped
(SIGTERM, then SIGKILL) and temporary directories removed on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp
import grpc

from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER = Path(sys.executable).parent / "agentjobs-server"
# A syntactically valid agent identifier (57+ characters), the same for both servers.
AGENT_IDENTIFIER = "bench" + "0" * 52 + "62656e6368"
DEMO_INPUT = {"text": "hello masumi"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def purchaser_id() -> str:
    """A fresh identifier_from_purchaser (hex, even length, 14-26 characters)."""
    return secrets.token_hex(8)


# -- child processes -----------------------------------------------------------------
@dataclass
class Child:
    """A child process whose output is drained continuously (a full pipe would stall
    it); `ready` patterns name the values to read from its start-up lines."""

    name: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    found: dict[str, str] = field(default_factory=dict)
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self, patterns: Mapping[str, str], ready: asyncio.Event) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode(errors="replace"):
            if len(self.output) < 2000:  # keep the start-up story, not the access log
                self.output.append(line)
            for name, pattern in patterns.items():
                if name not in self.found and (match := re.search(pattern, line)):
                    self.found[name] = match.group(1)
            if len(self.found) == len(patterns):
                ready.set()

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its live child processes have used
        (Linux /proc): `serve --processes N` is one process tree."""
        return tree_cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    async def stop(self, within_s: float = 15) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), within_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain, 5)


@contextlib.asynccontextmanager
async def child(
    name: str,
    argv: Sequence[str],
    ready: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    within_s: float = 60,
) -> AsyncIterator[Child]:
    """Start argv, wait until every `ready` pattern matched a line, stop it on exit."""
    full_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    started = Child(name, process)
    up = asyncio.Event()
    started._drain = asyncio.create_task(started._read(ready, up))
    try:
        waiter = asyncio.ensure_future(up.wait())
        done, _ = await asyncio.wait(
            {waiter, started._drain}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            raise RuntimeError(f"{name} did not come up:\n" + "".join(started.output[-40:]))
        yield started
    finally:
        await started.stop()


@dataclass(frozen=True)
class Payments:
    """Where a server finds the payment service."""

    url: str
    api_key: str


@contextlib.asynccontextmanager
async def ours(
    payments: Payments,
    directory: Path,
    *,
    monitor_interval_s: float = 5.0,
    database: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Child]:
    """`agentjobs-server serve` on ephemeral ports, a SQLite file in `directory`;
    found["grpc"] is host:port, found["http"] the base URL."""
    settings = {
        "AGENTJOBS_GRPC_ADDRESS": "127.0.0.1:0",
        "AGENTJOBS_HTTP_ADDRESS": "127.0.0.1:0",
        "AGENTJOBS_DATABASE_URL": database or f"sqlite+aiosqlite:///{directory / 'bench.db'}",
        "AGENTJOBS_MONITOR_INTERVAL_S": str(monitor_interval_s),
        "PAYMENT_SERVICE_URL": payments.url,
        "PAYMENT_API_KEY": payments.api_key,
        "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
        **(env or {}),
    }
    ready = {"grpc": r"gRPC  (127\.0\.0\.1:\d+)", "http": r"HTTP  (http://127\.0\.0\.1:\d+)"}
    async with child("agentjobs", [str(SERVER), "serve"], ready, settings, directory) as server:
        yield server


@contextlib.asynccontextmanager
async def reference(payments: Payments) -> AsyncIterator[Child]:
    """The masumi SDK's own MIP-003 server with the same demo agent (reference_server.py);
    found["http"] is its base URL."""
    settings = {
        "PAYMENT_SERVICE_URL": payments.url,
        "PAYMENT_API_KEY": payments.api_key,
        "AGENT_IDENTIFIER": AGENT_IDENTIFIER,
    }
    argv = [sys.executable, "-m", "bench.reference_server"]
    ready = {"http": r"HTTP  (http://127\.0\.0\.1:\d+)"}
    async with child("masumi reference", argv, ready, settings) as server:
        yield server


@contextlib.asynccontextmanager
async def ceiling(job_ids: Sequence[str]) -> AsyncIterator[Child]:
    """A bare grpc.aio server answering GetJobStatus from a dict (grpc_ceiling.py)."""
    argv = [sys.executable, "-m", "bench.grpc_ceiling", *job_ids]
    async with child("grpc ceiling", argv, {"grpc": r"gRPC  (127\.0\.0\.1:\d+)"}) as server:
        yield server


@contextlib.asynccontextmanager
async def sandbox(
    *, lock_after: float | None = None, settle_after: float = 1.0
) -> AsyncIterator[tuple[SandboxPaymentService, Payments]]:
    """The sandbox payment service in this (the driver's) process, on loopback."""
    service = SandboxPaymentService(
        api_key=secrets.token_hex(16), lock_after=lock_after, settle_after=settle_after
    )
    url = await service.start("127.0.0.1", 0)
    try:
        yield service, Payments(url=url, api_key=service.api_key)
    finally:
        await service.stop()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and, recursively, of its live children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for child_pid in (task / "children").read_text().split():
                total += tree_cpu_seconds(int(child_pid))
    return total


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def driver_cpu_seconds() -> float:
    """CPU time of this process (the driver, which hosts the sandbox)."""
    return time.process_time()


# -- starting jobs -------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    job_id: str
    blockchain_identifier: str


async def in_parallel(count: int, concurrency: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """make(0..count-1) with at most `concurrency` in flight; results in order."""
    results: list[T | None] = [None] * count
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            results[n] = await make(n)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return [r for r in results if r is not None]


async def start_jobs_grpc(target: str, count: int, concurrency: int = 32) -> list[Started]:
    """StartJob on agentjobs over gRPC, as callers would."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)

        async def one(_n: int) -> Started:
            request = jobs_pb2.StartJobRequest(identifier_from_purchaser=purchaser_id())
            request.input_data.update(DEMO_INPUT)
            answer = await stub.StartJob(request, timeout=60)
            return Started(answer.job_id, answer.blockchain_identifier)

        return await in_parallel(count, concurrency, one)


async def start_jobs_http(
    session: aiohttp.ClientSession, base_url: str, count: int, concurrency: int = 32
) -> list[Started]:
    """POST /start_job (MIP-003), on either server."""

    async def one(_n: int) -> Started:
        body = {"identifier_from_purchaser": purchaser_id(), "input_data": DEMO_INPUT}
        async with session.post(f"{base_url}/start_job", json=body) as response:
            response.raise_for_status()
            answer = await response.json()
        return Started(str(answer.get("id") or answer["job_id"]), answer["blockchainIdentifier"])

    return await in_parallel(count, concurrency, one)


async def http_status(session: aiohttp.ClientSession, base_url: str, job_id: str) -> str:
    async with session.get(f"{base_url}/status", params={"job_id": job_id}) as response:
        response.raise_for_status()
        return str((await response.json())["status"])


# -- load tools ----------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    failed: int


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not installed: apt-get install -y nghttp2-client wrk")
    return path


def grpc_frame(message: bytes) -> bytes:
    """gRPC length-prefixed message: 0 (uncompressed), 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def h2load(
    url: str,
    body: bytes,
    *,
    seconds: float,
    connections: int,
    streams: int,
    warmup_s: int = 2,
) -> Load:
    """POST the pre-framed gRPC body over h2c for `seconds`; percentiles from h2load's
    per-request log (its summary has only mean and sd)."""
    tool = require_tool("h2load")
    with temp_dir("bench-h2load-") as directory:
        (directory / "body").write_bytes(body)
        log = directory / "requests.log"
        argv = [
            tool,
            "-D",
            f"{seconds:g}",
            f"--warm-up-time={warmup_s}",
            "-c",
            str(connections),
            "-m",
            str(streams),
            "-t",
            "1",
            "-d",
            str(directory / "body"),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--log-file",
            str(log),
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        durations_ms = sorted(
            int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line
        )
    rps = float(_grab(r"finished in [\d.]+\w*, ([\d.]+) req/s", out))
    ok = int(_grab(r"(\d+) succeeded", out))
    failed = sum(int(_grab(rf"(\d+) {what}", out)) for what in ("failed", "errored", "timeout"))
    return Load(
        rps=rps,
        p50_ms=percentile(durations_ms, 50),
        p99_ms=percentile(durations_ms, 99),
        ok=ok,
        failed=failed,
    )


def wrk(url: str, *, seconds: float, connections: int) -> Load:
    tool = require_tool("wrk")
    argv = [tool, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    total = int(_grab(r"(\d+) requests in", out))
    non_2xx = int(_grab(r"Non-2xx or 3xx responses: (\d+)", out, default="0"))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Load(
        rps=float(_grab(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_wrk_ms(_grab(r"\s50%\s+([\d.]+\w+)", out)),
        p99_ms=_wrk_ms(_grab(r"\s99%\s+([\d.]+\w+)", out)),
        ok=total - non_2xx,
        failed=non_2xx + errors,
    )


def _grab(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is not None:
            return default
        raise RuntimeError(f"{pattern!r} not found in:\n{text}")
    return match.group(1)


def _wrk_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


# -- statistics and reporting --------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (nan when there are no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], digits: int = 0) -> str:
    """'median (min-max)' of repeated rounds."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{median(values):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def machine_line() -> str:
    load = os.getloadavg()[0]
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs (shared; 1-min load average {load:.1f} at start)"
    )


def say(line: str = "") -> None:
    print(line, flush=True)
