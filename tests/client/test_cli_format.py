"""How the CLI writes money and asset names for people (--json keeps the exact integers)."""

from __future__ import annotations

import pytest

from agentjobs.client.cli_format import format_ada, format_amount

USDM = "c48cbb3d5e57ed56e276bc45f99ab39abe94e6cd7ac39fb402da47ad" + "5553444d"


@pytest.mark.parametrize(
    ("lovelace", "shown"),
    [
        (0, "0 ADA"),
        (1, "0.000001 ADA"),
        (10_000_000, "10 ADA"),
        (12_500_000, "12.5 ADA"),
        (1_234_567_890_123, "1,234,567.890123 ADA"),
        (-2_000_001, "-2.000001 ADA"),
    ],
)
def test_lovelace_is_shown_as_exact_ada(lovelace: int, shown: str) -> None:
    assert format_ada(lovelace) == shown
    assert format_amount(lovelace, "") == shown
    assert format_amount(lovelace, "lovelace") == shown


def test_native_assets_are_shown_by_name_in_their_smallest_unit() -> None:
    assert format_amount(1_500_000, USDM) == "1,500,000 USDM"
    unnamed = "ab" * 28 + "00ff"
    assert format_amount(7, unnamed) == "7 abababab…ab00ff"
