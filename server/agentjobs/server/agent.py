"""The agent contract: a masumi-compatible handler plus its input schema.

    async def handler(identifier_from_purchaser: str, input_data: dict) -> str
    def handler(identifier_from_purchaser: str, input_data: dict) -> str   # e.g. crew.kickoff

A synchronous handler runs on a worker thread (bounded by the runner's concurrency), so
blocking code (CrewAI, LangChain) never stalls the service. A handler may ask a person
for more input mid-job: `await request_input(schema, message)` in an async handler,
`request_input(schema, message)` (it blocks) in a synchronous one.

Handlers can run more than once for one job: when the process running it stopped, or a
person's answer reaches another replica, the job is run again from its stored input and
the answers given so far are replayed to request_input. Keep handlers idempotent.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

Handler = Callable[[str, dict[str, Any]], Awaitable[str] | str]
# Prices a job from its input (dynamic pricing): [(amount, unit)], unit "" = lovelace.
Pricer = Callable[[dict[str, Any]], list[tuple[int, str]]]


@dataclass(frozen=True)
class Agent:
    handler: Handler
    input_schema: dict[str, Any] = field(default_factory=dict)
    name: str = "agent"
    demo_input: dict[str, Any] = field(default_factory=dict)
    demo_output: str = ""
    # Dynamic pricing: the funds to request for a job's input (None: the fixed price).
    price: Pricer | None = None


class InputRequester(Protocol):
    loop: asyncio.AbstractEventLoop

    async def __call__(self, schema: dict[str, Any], message: str | None) -> dict[str, Any]: ...


# Set by the job runner around each handler call.
current_input_requester: ContextVar[InputRequester | None] = ContextVar(
    "current_input_requester", default=None
)


def request_input(schema: dict[str, Any], message: str | None = None) -> Any:
    """Pause the running job until a person answers `schema` via ProvideInput.

    From an async handler: `answer = await request_input(...)`. From a synchronous
    handler (on its worker thread): `answer = request_input(...)` blocks until answered.
    The answer is the dict the person gave, validated against `schema`."""
    requester = current_input_requester.get()
    if requester is None:
        raise RuntimeError("request_input() can only be called by a handler the runner runs")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is requester.loop:
        return requester(schema, message)
    # A worker thread (or a loop of the handler's own): wait on the runner's loop.
    return asyncio.run_coroutine_threadsafe(requester(schema, message), requester.loop).result()


def load_agent(spec: str) -> Agent:
    """Load `module:attribute`: an Agent, or a bare handler, async or not (its module may
    define INPUT_SCHEMA, DEMO_INPUT, DEMO_OUTPUT and PRICE)."""
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
            price=getattr(module, "PRICE", None),
        )
    raise TypeError(f"{spec} is neither an Agent nor a handler")
