"""The built-in demo agent: shouts the text back, optionally after a person approves it."""

from __future__ import annotations

from typing import Any

from agentjobs.server.agent import Agent, request_input

INPUT_SCHEMA: dict[str, Any] = {
    "input_data": [
        {
            "id": "text",
            "type": "text",
            "name": "Text to shout",
            "data": {"placeholder": "hello masumi", "description": "Up to 1000 characters"},
            "validations": [
                {"validation": "min", "value": "1"},
                {"validation": "max", "value": "1000"},
            ],
        },
        {
            "id": "ask_for_review",
            "type": "boolean",
            "name": "Ask a person to approve before answering",
            "validations": [{"validation": "optional", "value": "true"}],
        },
    ]
}

REVIEW_SCHEMA: dict[str, Any] = {
    "input_data": [{"id": "approve", "type": "boolean", "name": "Approve the answer?"}]
}


async def shout(identifier_from_purchaser: str, input_data: dict[str, Any]) -> str:
    answer = str(input_data.get("text", "")).upper() + "!"
    if input_data.get("ask_for_review"):
        review = await request_input(REVIEW_SCHEMA, f"Approve the answer {answer!r}?")
        if not review.get("approve"):
            return "The reviewer declined the answer."
    return answer


agent = Agent(
    handler=shout,
    input_schema=INPUT_SCHEMA,
    name="demo-shouter",
    demo_input={"text": "hello masumi"},
    demo_output="HELLO MASUMI!",
)
