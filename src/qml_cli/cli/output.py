"""Rendering shared by every command: Rich for people, JSON for machines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Rich turns colour off by itself when NO_COLOR is set or stdout is not a terminal.
# Piped output gets a wide fixed width so that tables are not cut at 80 columns.
console = Console(
    highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: Any) -> Text:
    """Return `value` as literal text: no Rich markup, control characters escaped,
    so stored strings cannot restyle or retitle the operator's terminal."""
    text = "" if value is None else str(value)
    text = CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return Text(text)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    """Encode `data` as indented JSON, with dates as ISO 8601 strings."""
    return json.dumps(data, default=_default, indent=2, ensure_ascii=False)


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout, without Rich markup or wrapping."""
    sys.stdout.write(to_json(data) + "\n")
    sys.stdout.flush()


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Print rows as a Rich table; numbers are right-aligned."""
    rows = [list(row) for row in rows]
    table = Table(title=title, show_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        numeric = bool(rows) and all(
            isinstance(row[index], int | float) and not isinstance(row[index], bool)
            for row in rows
            if row[index] is not None
        )
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(plain(cell) for cell in row))
    console.print(table)


def print_fields(title: str | None, fields: dict[str, Any]) -> None:
    """Print key-value pairs as a two-column table."""
    print_table(title, ["field", "value"], fields.items())


def say(message: str) -> None:
    """Print a line for people on stdout."""
    console.print(plain(message))


def warn(message: str) -> None:
    """Print a warning on stderr."""
    err_console.print(plain(f"warning: {message}"), style="yellow")


def error(message: str) -> None:
    """Print an error on stderr."""
    err_console.print(plain(f"error: {message}"), style="red")
