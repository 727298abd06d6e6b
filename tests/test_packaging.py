"""The wheel a caller installs: it carries the stubs, the client and the server, and in a
clean virtualenv with only the base dependencies the client talks to a live server."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from agentjobs.server.testing import ThreadedServer, server_in_thread

ROOT = Path(__file__).resolve().parent.parent
CALLER = """
import importlib.util, sys
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc
from agentjobs.client import JobClient, JobNotFound
for server_only in ("sqlalchemy", "fastapi", "masumi", "typer"):
    assert importlib.util.find_spec(server_only) is None, server_only
assert jobs_pb2_grpc.JobServiceStub
with JobClient(sys.argv[1]) as client:
    print(client.get_availability().type)
    try:
        client.get_job_status("no-such-job")
    except JobNotFound as error:
        print(error.reason)
"""


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("agentjobs-*.whl")
    return wheel


def test_wheel_holds_the_three_packages(tmp_path: Path) -> None:
    names = zipfile.ZipFile(build_wheel(tmp_path)).namelist()
    for package in ("agentjobs/v1/jobs_pb2_grpc.py", "agentjobs/client/", "agentjobs/server/"):
        assert any(name.startswith(package) for name in names), package
    # A PEP 420 namespace: an agentjobs/__init__.py would hide one of the two source roots.
    assert "agentjobs/__init__.py" not in names
    assert any(name.startswith("agentjobs/server/repository/migrations/") for name in names)


def test_clean_venv_caller_uses_the_client_without_server_deps(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    env_dir = tmp_path / "caller-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    (tmp_path / "server").mkdir()
    server: ThreadedServer
    with server_in_thread(tmp_path / "server") as server:
        answer = subprocess.run(
            [str(python), "-c", CALLER, server.grpc_target],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["masumi-agent", "JOB_NOT_FOUND"]
