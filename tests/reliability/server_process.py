"""`agentjobs-server serve` as a child process, the way an operator runs it: started on
ephemeral ports, its output drained continuously (a full pipe would stall the server),
and killed or stopped on request."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVER = Path(sys.executable).parent / "agentjobs-server"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    grpc_target: str = ""
    http_url: str = ""
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _drain: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.output)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode(errors="replace"):
            self.output.append(line)
            if (match := re.search(r"gRPC  (127\.0\.0\.1:\d+)", line)) is not None:
                self.grpc_target = match.group(1)
            if (match := re.search(r"HTTP  (http://127\.0\.0\.1:\d+)", line)) is not None:
                self.http_url = match.group(1)
                self._ready.set()

    async def wait_ready(self, within_s: float = 60) -> None:
        waiter = asyncio.ensure_future(self._ready.wait())
        assert self._drain is not None
        done, _ = await asyncio.wait(
            {waiter, self._drain}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            raise AssertionError("server did not come up:\n" + self.text)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut or an OOM kill."""
        self.process.kill()
        await self.wait()

    async def terminate(self, within_s: float = 30) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait(within_s)

    async def wait(self, within_s: float = 30) -> int:
        code = await asyncio.wait_for(self.process.wait(), within_s)
        if self._drain is not None:
            await asyncio.wait_for(self._drain, within_s)
        return code


async def start_server_process(cwd: Path, env: Mapping[str, str]) -> ServerProcess:
    """Start on ephemeral ports; `env` overrides the environment (None values drop)."""
    full_env = {
        **os.environ,
        "AGENTJOBS_GRPC_ADDRESS": "127.0.0.1:0",
        "AGENTJOBS_HTTP_ADDRESS": "127.0.0.1:0",
        "PYTHONUNBUFFERED": "1",
        # Test agents live in the tests package.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        str(SERVER),
        "serve",
        cwd=cwd,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = ServerProcess(process)
    server._drain = asyncio.create_task(server._read())
    await server.wait_ready()
    return server
