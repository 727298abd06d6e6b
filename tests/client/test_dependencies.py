"""`agentjobs.client` needs only the base dependencies: it imports and works with the CLI
extra and every server dependency made unimportable."""

from __future__ import annotations

import subprocess
import sys

from agentjobs.server.testing import ThreadedServer

CALLER = """
import importlib.abc, sys

BLOCKED = {"typer", "click", "rich", "pydantic", "pydantic_settings", "sqlalchemy",
           "aiosqlite", "asyncpg", "alembic", "fastapi", "uvicorn", "aiohttp", "masumi",
           "prometheus_client", "grpc_health", "grpc_reflection", "grpc_channelz"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked: {name}", name=name)
        return None

sys.meta_path.insert(0, Block())
from agentjobs.client import JobClient, JobNotFound
assert not [m for m in sys.modules if m.startswith("agentjobs.server")]
with JobClient(sys.argv[1]) as client:
    print(client.get_availability().type)
    try:
        client.get_job_status("missing")
    except JobNotFound as error:
        print(error.reason)
"""


def test_the_client_runs_on_the_base_dependencies(threaded: ThreadedServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CALLER, threaded.grpc_target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["masumi-agent", "JOB_NOT_FOUND"]
