"""The agent a server subprocess loads for the restart tests
(AGENTJOBS_AGENT=tests.services.process_agents:restartable). Its runs are counted in
files under $SERVICES_TEST_STATE_DIR: the only memory that survives a SIGKILL."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from agentjobs.server.agent import request_input
from tests.services.agents import APPROVAL_QUESTION, COLOUR_QUESTION, optional_text, shouted

STATE_DIR_VARIABLE = "SERVICES_TEST_STATE_DIR"
# A unix socket of the test's: every run is announced there, as it starts.
RUN_SOCKET_VARIABLE = "SERVICES_TEST_RUN_SOCKET"

INPUT_SCHEMA: dict[str, Any] = {"input_data": [optional_text("text"), optional_text("mode")]}


def runs_file(state_dir: Path, identifier_from_purchaser: str) -> Path:
    return state_dir / f"{identifier_from_purchaser}.runs"


def runs_of(state_dir: Path, identifier_from_purchaser: str) -> int:
    """How many times the handler was started for the job of this purchaser identifier."""
    path = runs_file(state_dir, identifier_from_purchaser)
    return len(path.read_text().splitlines()) if path.exists() else 0


def _count_run(identifier_from_purchaser: str) -> int:
    state_dir = Path(os.environ[STATE_DIR_VARIABLE])
    with runs_file(state_dir, identifier_from_purchaser).open("a") as runs:
        runs.write("run\n")
    return runs_of(state_dir, identifier_from_purchaser)


async def _announce(identifier_from_purchaser: str) -> None:
    socket_path = os.environ.get(RUN_SOCKET_VARIABLE)
    if not socket_path:
        return
    _reader, writer = await asyncio.open_unix_connection(socket_path)
    writer.write(f"{identifier_from_purchaser}\n".encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def restartable(identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
    """mode "block_first_run": the first run never returns (the test kills the server
    under it), later runs shout; "ask": asks for a colour and an approval and names the
    run that answered; anything else shouts."""
    run = _count_run(identifier_from_purchaser)
    await _announce(identifier_from_purchaser)
    mode = input_data.get("mode")
    text = str(input_data.get("text", ""))
    if mode == "block_first_run" and run == 1:
        await asyncio.Event().wait()
    if mode == "ask":
        colour = await request_input(COLOUR_QUESTION, "Which colour?")
        approval = await request_input(APPROVAL_QUESTION, "Approve?")
        verdict = "approved" if approval["approve"] else "declined"
        return f"{text} in {colour['colour']}, {verdict} (run {run})"
    return shouted(text)
