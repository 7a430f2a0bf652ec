"""Tables that stay readable in the terminal they are printed to.

A table is declared as columns, each with what it is worth on a narrow terminal:

- ``drop=0`` columns (ids, names, the measures the table is about) are always shown;
- other columns are dropped when the table would not fit, the highest ``drop`` first,
  and before any of them the columns that hold nothing but ``-`` in every row;
- ``flex`` columns (free text: reasons, messages) are cut to the room left, with an
  ellipsis, instead of pushing the others out;
- ``whole`` columns (ids) are never cut; when the columns kept still do not fit, the
  widest other text columns are cut, with an ellipsis, numbers last of all;
- every cell stays on one line; a caption names what was left out, and ``--wide``
  prints every column in full, however wide that is.

Cells are plain text (a ``[`` in a stored reason is not rich markup); a cell that needs a
colour is a :class:`rich.text.Text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "print_table", "wide_option"]

Cell = str | Text
F = TypeVar("F", bound=Callable[..., Any])
FLEX_MIN = 12  # a free-text column is never cut shorter than this
_EMPTY = ("", "-")

wide_option: Callable[[F], F] = click.option(
    "--wide", is_flag=True,
    help="Every column, in full, however wide [default: fit the terminal, dropping the "
         "least useful columns].")


@dataclass(frozen=True)
class Column:
    header: str
    justify: Literal["left", "right"] = "left"
    drop: int = 0
    flex: bool = False
    whole: bool = False


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _natural(col: Column, cells: list[Text]) -> int:
    return max([len(col.header), *(c.cell_len for c in cells)])


def _width(widths: Sequence[int]) -> int:
    """The printed width of a table with these column widths: one space of padding on
    each side of a cell and a rule between columns and at each edge."""
    return sum(widths) + 3 * len(widths) + 1


def _fit(columns: Sequence[Column], cells: list[list[Text]], room: int) -> list[int]:
    """Indexes of the columns to show in ``room`` characters."""
    shown = list(range(len(columns)))
    natural = [_natural(c, [row[i] for row in cells]) for i, c in enumerate(columns)]
    empty = {i for i in shown
             if cells and all(row[i].plain.strip() in _EMPTY for row in cells)}
    order = sorted((i for i in shown if columns[i].drop),
                   key=lambda i: (i not in empty, -columns[i].drop, -i))

    def needed() -> int:
        return _width([min(natural[i], FLEX_MIN) if columns[i].flex else natural[i]
                       for i in shown])

    for i in order:
        if needed() <= room:
            break
        shown.remove(i)
    return shown


def _squeeze(columns: Sequence[Column], widths: dict[int, int], room: int) -> None:
    """Cut the widest text columns, a character at a time, until the table fits (numbers
    and ``whole`` columns are left whole); no column is cut shorter than ``FLEX_MIN``."""
    while _width(list(widths.values())) > room:
        text = [i for i in widths if columns[i].justify == "left" and not columns[i].whole
                and widths[i] > FLEX_MIN]
        if not text:
            return
        widths[max(text, key=lambda i: (widths[i], -i))] -= 1


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]],
                *, wide: bool = False, title: str | None = None) -> None:
    """Print ``rows`` under ``columns``, fitted to ``console``'s width unless ``wide``."""
    cells = [[_text(c) for c in row] for row in rows]
    room = console.width
    shown = list(range(len(columns))) if wide else _fit(columns, cells, room)
    natural = {i: _natural(columns[i], [row[i] for row in cells]) for i in shown}
    widths = dict(natural)
    if not wide:
        flex = sorted((i for i in shown if columns[i].flex), key=lambda i: natural[i])
        left = room - _width([natural[i] for i in shown if i not in flex] + [0] * len(flex))
        for n, i in enumerate(flex):  # the shortest first; what one leaves, the next gets
            widths[i] = min(natural[i], max(FLEX_MIN, left // (len(flex) - n)))
            left -= widths[i]
        _squeeze(columns, widths, room)
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    table = Table(title=title, title_justify="left",
                  caption=(f"{len(hidden)} more with --wide: {', '.join(hidden)}"
                           if hidden else None),
                  caption_justify="left")
    for i in shown:
        col = columns[i]
        table.add_column(col.header, justify=col.justify, no_wrap=True, overflow="ellipsis",
                         max_width=widths[i] if widths[i] < natural[i] else None)
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    if wide:
        console = Console(width=max(room, _width(list(natural.values()))),
                          no_color=console.no_color, force_terminal=console.is_terminal)
    console.print(table, soft_wrap=False)
