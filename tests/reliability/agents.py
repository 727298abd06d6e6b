"""Agents the reliability suites load into a server subprocess via AGENTJOBS_AGENT."""

from __future__ import annotations

import asyncio
import random
from typing import Any

INPUT_SCHEMA: dict[str, Any] = {
    "input_data": [{"id": "text", "type": "text", "name": "Text"}],
}


async def slow_shout(identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
    """Takes long enough that a kill often lands while it runs."""
    await asyncio.sleep(random.uniform(0.05, 0.4))
    return str(input_data.get("text", "")).upper() + "!"


async def few_seconds(identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
    """The cluster suite's agent: long enough that a replica can be killed under it."""
    await asyncio.sleep(2.0)
    return str(input_data.get("text", "")).upper() + "!"
