"""Printing results: a Rich table for people, CSV or JSON for scripts."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kizuna._numbers import finite_or_none

__all__ = ["FORMATS", "Percent", "console", "error_console", "print_json", "show_rows"]

FORMATS = ("table", "csv", "json")
# Piped or captured output would be cut at 80 columns, clipping Japanese labels and yen amounts.
console = Console() if sys.stdout.isatty() else Console(width=160)
error_console = Console(stderr=True)


def show_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], fmt: str = "table",
    title: str | None = None,
) -> None:
    """Print `rows` with `columns` as (key, header label).

    Cells are `Text`, never markup: a customer's channel `[/bad]` or name `[red]x` is data
    (Rich would fail on the first and colour the second). Titles and labels are kizuna's own.
    """
    if fmt == "json":
        print_json([{k: r.get(k) for k, _ in columns} for r in rows])
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([label for _, label in columns])
        for r in rows:
            writer.writerow([r.get(k) for k, _ in columns])
        return
    table = Table(title=title, title_justify="left")
    for index, (_, label) in enumerate(columns):
        # fold, not "…": Japanese has no spaces to wrap at, and a cut action or amount misleads
        table.add_column(label, justify="left" if index == 0 else "right", overflow="fold")
    for r in rows:
        table.add_row(*[_cell(r.get(k)) for k, _ in columns])
    console.print(table)


class Percent(float):
    """A percentage, shown with one decimal (a plain float in CSV and JSON)."""


def print_json(value: Any) -> None:
    """JSON on standard output; a number that is not finite is null (allow_nan=False makes sure)."""
    json.dump(finite_or_none(value), sys.stdout, ensure_ascii=False, default=str, indent=1, allow_nan=False)
    sys.stdout.write("\n")


def _cell(value: Any) -> Text:
    return Text(_cell_text(value))


def _cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Percent):
        return f"{value:,.1f}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
