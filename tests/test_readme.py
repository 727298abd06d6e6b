"""The README's examples work as printed: the Python snippet (run against a live server)
and the --input-file example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from agentjobs.client.cli_app import build_app
from agentjobs.server.testing import server_in_thread
from tests.client.helpers import assert_ok, run_cli

README = Path(__file__).resolve().parents[1] / "README.md"
DOCUMENTED_TARGET = "127.0.0.1:50051"


def _block_after(marker: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(marker)
    found = re.search(rf"```{language}\n(.*?)```", text[start:], re.DOTALL)
    assert found is not None, f"no {language} block after {marker!r}"
    return found.group(1)


def test_the_python_snippet_prints_status_names(tmp_path: Path) -> None:
    snippet = _block_after("From Python", "python")
    assert DOCUMENTED_TARGET in snippet
    with server_in_thread(tmp_path, sandbox_lock_after_s=0.2) as server:
        done = subprocess.run(
            [sys.executable, "-c", snippet.replace(DOCUMENTED_TARGET, server.grpc_target)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split()
    assert printed[0] == "awaiting_payment"
    assert printed[-1] == "completed"
    assert set(printed) <= {"awaiting_payment", "running", "completed"}, printed


def test_the_input_file_example(tmp_path: Path) -> None:
    block = _block_after("`--input-file` takes a", "sh")
    document = re.search(r"<<'EOF'\n(.*?)\nEOF", block, re.DOTALL)
    assert document is not None, block
    written = tmp_path / "input.json"
    written.write_text(document.group(1))
    line = next(line for line in block.splitlines() if "agentjobs start" in line)
    command = line.split()
    # The README's input.json is relative to where the person typed the commands.
    args = [str(written) if a == "input.json" else a for a in command[command.index("start") :]]
    assert str(written) in args
    env = {}
    with server_in_thread(tmp_path) as server:
        env["AGENTJOBS_TARGET"] = server.grpc_target
        started = assert_ok(run_cli(*args, "--json", env=env)).json()
        again = assert_ok(run_cli(*args, "--json", env=env)).json()  # --request-id: same job
    assert started["job_id"] == again["job_id"]
    assert json.loads(document.group(1))["text"] == "hello from a file"


def test_every_cli_command_listed_exists_and_every_command_is_listed() -> None:
    block = _block_after("With the CLI", "sh")
    listed = set(re.findall(r"agentjobs (\w+)", block))
    listed |= set(re.findall(r"also: ([\w, ]+)", block)[0].replace(",", " ").split())
    commands = {
        command.name or getattr(command.callback, "__name__", "")
        for command in build_app().registered_commands
    }
    assert listed == commands
