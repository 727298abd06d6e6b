"""Agents the services suite runs in-process: one handler whose behaviour each job's
input picks, and which a test can hold, count and question."""

from __future__ import annotations

import asyncio
from typing import Any

from agentjobs.server.agent import Agent, request_input


def optional_text(field_id: str) -> dict[str, Any]:
    return {
        "id": field_id,
        "type": "text",
        "name": field_id,
        "validations": [{"validation": "optional", "value": "true"}],
    }


# Only optional fields: {} is a valid input.
INPUT_SCHEMA: dict[str, Any] = {"input_data": [optional_text("text"), optional_text("mode")]}

COLOUR_QUESTION: dict[str, Any] = {
    "input_data": [{"id": "colour", "type": "text", "name": "Which colour?"}]
}
APPROVAL_QUESTION: dict[str, Any] = {
    "input_data": [{"id": "approve", "type": "boolean", "name": "Approve the answer?"}]
}


def shouted(text: str) -> str:
    return text.upper() + "!"


class ScriptedAgent:
    """input_data["mode"] picks what the handler does:

    shout (default)  return the text upper-cased with "!"
    hold             shout once the test opens `gate`
    hold_raise       raise RuntimeError once the test opens `gate`
    forever          never return (deadline tests)
    raise            raise RuntimeError
    own_timeout      raise TimeoutError (as the agent's own HTTP call might)
    empty / not_str  return "" / an int
    ask              ask for a colour, then for approval, then answer with both
    """

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        # The input of every handler call, in call order.
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._changed = asyncio.Condition()

    @property
    def agent(self) -> Agent:
        return Agent(handler=self.handle, input_schema=INPUT_SCHEMA, name="scripted")

    async def wait_for_calls(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= count)

    async def wait_for_active(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active >= count)

    async def wait_until_idle(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active == 0)

    async def handle(self, identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
        self.calls.append(dict(input_data))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await self._notify()
        try:
            return await self._behave(input_data)
        finally:
            self.active -= 1
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _behave(self, input_data: dict[str, Any]) -> str:
        mode = input_data.get("mode", "shout")
        text = str(input_data.get("text", ""))
        if mode in ("hold", "hold_raise"):
            await self.gate.wait()
        if mode in ("raise", "hold_raise"):
            raise RuntimeError(f"cannot shout {text!r}")
        if mode == "own_timeout":
            raise TimeoutError("its own call timed out")
        if mode == "forever":
            await asyncio.Event().wait()
        if mode == "empty":
            return ""
        if mode == "not_str":
            not_text: Any = 42
            return not_text
        if mode == "ask":
            colour = await request_input(COLOUR_QUESTION, "Which colour?")
            approval = await request_input(APPROVAL_QUESTION, "Approve?")
            verdict = "approved" if approval["approve"] else "declined"
            return f"{text} in {colour['colour']}, {verdict}"
        return shouted(text)
