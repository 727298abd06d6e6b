"""One handler per kind of step. Each looks at what it needs (the payment, the agent),
lets the lifecycle decide, and writes the decision fenced by the step's lease."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agentjobs.server.services.core import StepRun

StepHandler = Callable[[StepRun], Awaitable[None]]
