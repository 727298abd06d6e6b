"""Small pure pieces: reading the service's answers and the sandbox's date parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentjobs.server.domain import PaymentServiceUnavailableError
from agentjobs.server.payments.masumi import iso_ms
from agentjobs.server.payments.sandbox.payment_requests import is_hex
from agentjobs.server.payments.sandbox.views import iso_ms as sandbox_iso_ms
from agentjobs.server.payments.sandbox.zod import date_in_ms
from agentjobs.server.payments.service_answers import (
    payment_page,
    payment_state,
    timestamp,
    whole_number,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1721480200123", 1721480200123), ("0", 0), (1721480200123, 1721480200123)],
)
def test_whole_numbers_are_taken_exactly(value: object, expected: int) -> None:
    assert whole_number({"payByTime": value}, "payByTime", "test") == expected


@pytest.mark.parametrize("value", [None, "", "12.5", "-1", "1e3", " 12", True, -5, 1.5, "١٢"])
def test_anything_else_is_a_malformed_answer(value: object) -> None:
    with pytest.raises(PaymentServiceUnavailableError, match="payByTime"):
        whole_number({"payByTime": value}, "payByTime", "test")


def test_timestamps_are_utc() -> None:
    assert timestamp("2025-01-02T03:04:05.678Z", "t", "test") == datetime(
        2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC
    )
    assert timestamp("2025-01-02T03:04:05.678", "t", "test").tzinfo is UTC
    with pytest.raises(PaymentServiceUnavailableError):
        timestamp("yesterday", "t", "test")


def test_a_payment_needs_its_next_action() -> None:
    with pytest.raises(PaymentServiceUnavailableError, match="NextAction"):
        payment_state({"blockchainIdentifier": "b"}, "test")
    with pytest.raises(PaymentServiceUnavailableError, match="id or"):
        payment_page(
            {
                "Payments": [
                    {"blockchainIdentifier": "b", "NextAction": {"requestedAction": "None"}}
                ]
            },
            "test",
        )


def test_iso_ms_round_trips_through_the_sandbox_parser() -> None:
    moment = datetime(2025, 6, 7, 8, 9, 10, 987654, tzinfo=UTC)
    assert iso_ms(moment) == "2025-06-07T08:09:10.987Z"
    parsed = date_in_ms(iso_ms(moment))
    assert parsed is not None
    assert sandbox_iso_ms(parsed) == "2025-06-07T08:09:10.987Z"
    assert iso_ms(moment.replace(tzinfo=None)) == iso_ms(moment)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-01", "2025-01-01T00:00:00.000Z"),
        ("2025-01-01T10:30", "2025-01-01T10:30:00.000Z"),
        ("2025-01-01T10:30:05.1Z", "2025-01-01T10:30:05.100Z"),
        ("2025-01-01T10:30:05.123456789Z", "2025-01-01T10:30:05.123Z"),
        ("2025-01-01T10:30:05", "2025-01-01T10:30:05.000Z"),
        ("2024-02-29T10:30Z", "2024-02-29T10:30:00.000Z"),
    ],
)
def test_the_sandbox_reads_the_dates_the_service_reads(text: str, expected: str) -> None:
    parsed = date_in_ms(text)
    assert parsed is not None
    assert sandbox_iso_ms(parsed) == expected


# What zod 4.3's z.iso.date() / z.iso.datetime() / z.iso.datetime({local: true}) refuse.
@pytest.mark.parametrize(
    "text",
    [
        "2025-13-01",
        "01/02/2025",
        "2025-01-01 10:00",
        "",
        "now",
        "2025-01-01T12:30:05+02:00",
        "2025-01-01T12:30:05+00:00",
        "2025-01-01T12:30:05.000z",
        "2023-02-29",
        "2025-01-01T24:00:00Z",
        "2025-01-01T10:00:00.Z",
    ],
)
def test_the_sandbox_refuses_other_dates(text: str) -> None:
    assert date_in_ms(text) is None


def test_hex_in_whole_bytes() -> None:
    assert is_hex("aabb") and is_hex("AABB")
    assert not is_hex("aab") and not is_hex("") and not is_hex("zz")
