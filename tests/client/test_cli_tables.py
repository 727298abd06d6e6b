"""AdaptiveTable's promises checked on rich's own rendering: no header word is cut."""

from __future__ import annotations

import pytest
from rich.console import Console

from agentjobs.client.cli_tables import AdaptiveTable, Column


def rendered(table: AdaptiveTable, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    with console.capture() as captured:
        console.print(table)
    return captured.get()


@pytest.mark.parametrize("width", [12, 40, 80, 160])
def test_a_no_wrap_column_narrower_than_its_header_keeps_every_header_word(width: int) -> None:
    # Every invoice unpaid: "on chain" heads a column of dashes; a short replica id.
    table = AdaptiveTable(
        "Narrow values",
        [
            Column("replica id", no_wrap=True),
            Column("state", no_wrap=True),
            Column("on chain", no_wrap=True, priority=1, stack_under="state"),
        ],
        [["vm:1", "pending", "—"], ["vm:22", "pending", "—"]],
    )
    shown = rendered(table, width)
    words = shown.split()
    for word in ("replica", "id", "state", "on", "chain", "vm:1", "vm:22", "pending"):
        assert word in words, f"{word!r} cut at {width} columns:\n{shown}"
    assert all(len(line) <= width for line in shown.splitlines()), shown
