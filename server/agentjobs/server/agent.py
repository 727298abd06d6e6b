"""The agent contract: a masumi-compatible async handler plus its input schema.

    async def handler(identifier_from_purchaser: str, input_data: dict) -> str

A handler may ask a person for more input mid-job with `await request_input(schema,
message)`. Handlers can run more than once for one job: after a crash, a job that was
running without a stored result is re-run from its stored input. Keep them idempotent.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

Handler = Callable[[str, dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class Agent:
    handler: Handler
    input_schema: dict[str, Any] = field(default_factory=dict)
    name: str = "agent"
    demo_input: dict[str, Any] = field(default_factory=dict)
    demo_output: str = ""


class InputRequester(Protocol):
    async def __call__(self, schema: dict[str, Any], message: str | None) -> dict[str, Any]: ...


# Set by the job runner around each handler call.
current_input_requester: ContextVar[InputRequester | None] = ContextVar(
    "current_input_requester", default=None
)


async def request_input(schema: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    """Pause the running job until a person answers `schema` via ProvideInput."""
    requester = current_input_requester.get()
    if requester is None:
        raise RuntimeError("request_input() can only be called by a handler the runner runs")
    return await requester(schema, message)


def load_agent(spec: str) -> Agent:
    """Load `module:attribute`: an Agent, or a bare handler (its module may define
    INPUT_SCHEMA, DEMO_INPUT and DEMO_OUTPUT)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"agent must be 'module:attribute', got {spec!r}")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute)
    if isinstance(target, Agent):
        return target
    if callable(target):
        return Agent(
            handler=target,
            input_schema=getattr(module, "INPUT_SCHEMA", {}),
            name=attribute,
            demo_input=getattr(module, "DEMO_INPUT", {}),
            demo_output=getattr(module, "DEMO_OUTPUT", ""),
        )
    raise TypeError(f"{spec} is neither an Agent nor an async handler")
