"""Tables that read well at any terminal width, laid out when they are printed.

A table declares its columns; at print time it takes the room there is:

    table = AdaptiveTable(
        "Invoices (2)",
        [
            Column("job id", no_wrap=True),                     # always, never cut
            Column("amount", no_wrap=True, justify="right"),
            Column("state", no_wrap=True),
            Column("on chain", no_wrap=True, priority=1, stack_under="state"),
            Column("updated", no_wrap=True, priority=2, stack_under="amount"),
        ],
        rows,                                                   # one cell per column
    )
    console.print(table)

Side by side when it fits. When it does not, the columns with the highest priority give
way first: one with `stack_under` moves into that column's cell (under its value, its
name under that header), one without is left out (a dim line says which, and that
--json has everything). Priority 0 columns always stay; when even they do not fit side
by side, each row is shown as a block of `name  value` lines instead. No word is ever
split and no `no_wrap` cell (ids, times, amounts) is ever cut or broken: a column is
never narrower than its longest word (or its `min_width`), a no_wrap column never
narrower than its longest value.

`KeyValues` is the same promise for `key  value` views (a job, its payment request):
a value that does not fit beside its key goes on the lines under it, indented.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import (
    Console,
    ConsoleOptions,
    Group,
    JustifyMethod,
    RenderableType,
    RenderResult,
)
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

Cell = str | Text

# What rich's default box adds around n columns: "│ " before each, " │" after the last.
_BORDER_PER_COLUMN = 3
_BORDER_EXTRA = 1
_KEY_GAP = 2
_INDENT = 2


@dataclass(frozen=True)
class Column:
    name: str
    # 0: always shown side by side. Higher: gives way earlier when the room runs out.
    priority: int = 0
    # The narrowest a wrapping column may become (it never goes below its longest word).
    min_width: int = 0
    # Ids, times, amounts: one line per value, never wrapped, never cut.
    no_wrap: bool = False
    justify: JustifyMethod = "left"
    # When the room runs out, show this column's value under that column's value.
    stack_under: str | None = None


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def longest_word(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def longest_line(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _needed(column: Column, cells: Iterable[Text]) -> int:
    """The narrowest the column can be without cutting a value or splitting a word."""
    plains = [cell.plain for cell in cells]
    header = longest_word(column.name)
    if column.no_wrap:
        return max([header, 1, *(longest_line(p) for p in plains)])
    # min_width only for content that needs it: an empty column stays narrow.
    widest = max([0, *(longest_line(p) for p in plains)])
    words = max([0, *(longest_word(p) for p in plains)])
    return max(header, min(column.min_width, widest), words, 1)


@dataclass
class _Slot:
    """One column of the printed table: a column and the ones stacked under it."""

    columns: list[int]
    width: int  # the narrowest it may be
    natural: int  # as wide as its widest line: wider is wasted room


class AdaptiveTable:
    def __init__(
        self,
        title: str,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Cell]],
    ) -> None:
        if any(len(row) != len(columns) for row in rows):
            raise ValueError("every row needs one cell per column")
        self.title = title
        self.columns = list(columns)
        self.rows = [[_text(cell) for cell in row] for row in rows]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layout = self.layout(options.max_width)
        if layout is None:
            yield self._as_blocks()
            return
        slots, hidden = layout
        yield self._as_table(slots)
        if hidden:
            names = ", ".join(self.columns[i].name for i in hidden)
            yield Text(
                f"(not shown at {options.max_width} columns: {names}; --json has everything)",
                style="dim",
            )

    # -- layout ------------------------------------------------------------------
    def layout(self, width: int) -> tuple[list[_Slot], list[int]] | None:
        """The slots (side by side) and the hidden columns for `width`; None when even
        the priority-0 columns do not fit side by side."""
        needed = [
            _needed(column, (row[i] for row in self.rows)) for i, column in enumerate(self.columns)
        ]
        natural = [
            max([needed[i], *(longest_line(row[i].plain) for row in self.rows)])
            for i in range(len(self.columns))
        ]
        slots = [_Slot([i], needed[i], natural[i]) for i in range(len(self.columns))]
        hidden: list[int] = []
        giving_way = sorted(
            (i for i, c in enumerate(self.columns) if c.priority > 0),
            key=lambda i: -self.columns[i].priority,
        )
        for index in giving_way:
            if _table_width(slots) <= width:
                break
            slots = [s for s in slots if s.columns != [index]]
            host = self._host_slot(slots, self.columns[index].stack_under)
            if host is None:
                hidden.append(index)
            else:
                host.columns.append(index)
                host.width = max(host.width, needed[index])
                host.natural = max(host.natural, natural[index])
        if _table_width(slots) > width:
            return None
        _share_the_room(slots, width)
        return slots, sorted(hidden)

    def _host_slot(self, slots: list[_Slot], name: str | None) -> _Slot | None:
        for slot in slots:
            if name is not None and self.columns[slot.columns[0]].name == name:
                return slot
        return None

    # -- rendering ---------------------------------------------------------------
    def _as_table(self, slots: list[_Slot]) -> Table:
        table = Table(title=self.title, title_justify="left")
        for slot in slots:
            first = self.columns[slot.columns[0]]
            table.add_column(
                _header([self.columns[i].name for i in slot.columns], slot.width),
                justify=first.justify,
                no_wrap=all(self.columns[i].no_wrap for i in slot.columns),
                # Exact widths: rich's own sharing can end a column or two over the room.
                width=slot.width,
                overflow="fold",
            )
        for row in self.rows:
            table.add_row(*(Text("\n").join(row[i] for i in slot.columns) for slot in slots))
        return table

    def _as_blocks(self) -> RenderableType:
        blocks: list[RenderableType] = [Text(self.title, style="italic")]
        for row in self.rows:
            pairs = [(column.name, row[i]) for i, column in enumerate(self.columns)]
            blocks.append(KeyValues(pairs))
            blocks.append(Text(""))
        return Group(*blocks)


def _header(names: Sequence[str], width: int) -> str:
    """The slot's names, one per line, each wrapped at its spaces to `width`: rich cuts
    the header of a no_wrap column narrower than it ("on chain" over "—" showed "on ch")."""
    lines: list[str] = []
    for name in names:
        line = ""
        for word in name.split():
            if line and cell_len(line) + 1 + cell_len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "\n".join(lines)


def _table_width(slots: Sequence[_Slot]) -> int:
    return sum(s.width for s in slots) + _BORDER_PER_COLUMN * len(slots) + _BORDER_EXTRA


def _share_the_room(slots: Sequence[_Slot], width: int) -> None:
    """Widen the wrapping slots towards their natural width, evenly, within `width`."""
    room = width - _table_width(slots)
    growing = [s for s in slots if s.natural > s.width]
    while room > 0 and growing:
        share = max(1, room // len(growing))
        for slot in growing:
            grow = min(share, slot.natural - slot.width, room)
            slot.width += grow
            room -= grow
        growing = [s for s in growing if s.natural > s.width]


class KeyValues:
    """`key  value` lines; a value too wide to sit beside its key goes under it."""

    def __init__(self, rows: Sequence[tuple[str, RenderableType | str]], title: str = "") -> None:
        self.rows = [(key, _text(v) if isinstance(v, str) else v) for key, v in rows]
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        key_width = max((cell_len(key) for key, _ in self.rows), default=0)
        if self.title:
            yield Text(self.title, style="italic")
        beside = Table.grid(padding=(0, _KEY_GAP))
        beside.add_column(style="bold", no_wrap=True, min_width=key_width)
        beside.add_column(overflow="fold")
        pending = False
        for key, value in self.rows:
            words = longest_word(value.plain) if isinstance(value, Text) else 0
            if key_width + _KEY_GAP + words <= width:
                beside.add_row(key, value)
                pending = True
                continue
            if pending:
                yield beside
                beside = Table.grid(padding=(0, _KEY_GAP))
                beside.add_column(style="bold", no_wrap=True, min_width=key_width)
                beside.add_column(overflow="fold")
                pending = False
            yield Text(key, style="bold")
            yield Padding(value, (0, 0, 0, _INDENT))
        if pending:
            yield beside
