"""Running the real `agentjobs-server` entry point and reading what it says."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(sys.executable).parent / "agentjobs-server"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Exited:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def server_env(overrides: Mapping[str, str | None]) -> dict[str, str]:
    """The test's environment without any AGENTJOBS_* / masumi / OTEL_* setting of the
    developer's shell, on ephemeral ports, plus `overrides` (None removes)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTJOBS_", "OTEL_"))
        and k not in ("PAYMENT_SERVICE_URL", "PAYMENT_API_KEY", "AGENT_IDENTIFIER", "NETWORK")
    }
    env["AGENTJOBS_GRPC_ADDRESS"] = "127.0.0.1:0"
    env["AGENTJOBS_HTTP_ADDRESS"] = "127.0.0.1:0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_server(
    cwd: Path, overrides: Mapping[str, str | None], *args: str, timeout: float = 90
) -> Exited:
    """`agentjobs-server [args]` to its exit; a server that starts instead of failing
    never exits, and the timeout fails the test."""
    done = subprocess.run(
        [str(SERVER), *(args or ("serve",))],
        cwd=cwd,
        env=server_env(overrides),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Exited(done.returncode, done.stdout, done.stderr)


def assert_one_line(exited: Exited, *fragments: str, code: int = 2) -> str:
    """The start-up contract: exit `code`, nothing on stdout, one line on stderr that
    holds every fragment, no traceback."""
    assert exited.code == code, f"exit {exited.code}: {exited.err}{exited.out}"
    assert exited.out == ""
    assert len(exited.err_lines) == 1, exited.err
    line = exited.err_lines[0]
    for fragment in fragments:
        assert fragment in line, line
    assert "Traceback" not in exited.err
    return line


@contextmanager
def listening() -> Iterator[str]:
    """A loopback address something already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield f"127.0.0.1:{taken.getsockname()[1]}"
