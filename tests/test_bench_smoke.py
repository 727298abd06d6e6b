"""The open-loop benchmark runs end to end (a real server, the sandbox, a low rate for 2 s)
and cleans up after itself. Only that it runs and reports: no speed is asserted here."""

from __future__ import annotations

import os
import subprocess

from bench import bench_open_loop


def _our_servers() -> set[int]:
    """Live agentjobs-server processes started by this test process."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    me = str(os.getpid())
    return {
        int(pid)
        for pid, ppid, *args in (line.split(None, 2) for line in out.splitlines()[1:])
        if ppid == me and args and "agentjobs-server" in args[0]
    }


def test_open_loop_runs_and_reports() -> None:
    lines = bench_open_loop.run(["sqlite"], rates=[2], step_s=2, rounds=1)
    table = "\n".join(lines)
    assert "agentjobs, SQLite" in table
    assert any(line.startswith("| agentjobs, SQLite") for line in lines)
    assert not _our_servers()
