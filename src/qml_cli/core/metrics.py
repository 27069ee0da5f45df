"""Metric time series: CSV import with full validation before any write, and reads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from qml_cli.core.models import MetricPoint, Tenant
from qml_cli.errors import InvalidInput, NotFound

METRIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
DUPLICATE_POLICIES = ("error", "sum", "last")
MAX_REPORTED_PROBLEMS = 10
MAX_ROWS = 5_000_000
# ASCII decimal numbers only: no digit separators, other scripts' digits or words
# such as inf, which Python's float() would accept.
NUMBER_PATTERN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", re.ASCII)


def validate_metric_name(metric: str) -> str:
    if not METRIC_PATTERN.match(metric or ""):
        raise InvalidInput(
            f"invalid metric name {metric!r}.",
            hint="Use 1-100 lowercase letters, digits and underscores, starting "
            "with a letter (e.g. daily_sales).",
        )
    return metric


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an ISO date (midnight UTC) or date-time (naive means UTC)."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty time")
    value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{raw!r} is outside the supported years") from None


def parse_value(text: str) -> float:
    raw = text.strip()
    if not NUMBER_PATTERN.match(raw):
        raise ValueError(f"{raw!r} is not a plain decimal number")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return value


@dataclass
class ParsedCsv:
    points: dict[dt.datetime, float]
    rows: int
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)


def _read_text(source: str | Path) -> tuple[str, str]:
    if str(source) == "-":
        data, label = sys.stdin.buffer.read(), "standard input"
    else:
        path = Path(source)
        if path.is_dir():
            raise InvalidInput(f"{path} is a directory, not a CSV file.")
        if not path.is_file():
            raise InvalidInput(f"file not found: {path}.", hint="Check the path.")
        try:
            data, label = path.read_bytes(), str(path)
        except OSError as exc:
            raise InvalidInput(
                f"cannot read {path}: {exc.strerror}.", hint="Check its permissions."
            ) from None
    try:
        return data.decode("utf-8-sig"), label
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"{label} is not UTF-8: byte {data[exc.start]:#04x} on line {line}.",
            hint="Save the file as UTF-8 and import it again.",
        ) from None


def parse_csv(
    text: str, label: str, *, time_column: str, value_column: str, on_duplicate: str
) -> ParsedCsv:
    """Parse and validate every row; problems are collected, not raised."""
    if on_duplicate not in DUPLICATE_POLICIES:
        raise InvalidInput(
            f"invalid --on-duplicate {on_duplicate!r}.", hint="Use error, sum or last."
        )
    if "\x00" in text:
        raise InvalidInput(f"{label} contains NUL bytes; it is not a CSV text file.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            f"{label} is empty.",
            hint=f"Give a CSV with a header row naming {time_column} and "
            f"{value_column}.",
        ) from None
    except csv.Error as exc:
        raise InvalidInput(f"{label} line 1 is not valid CSV: {exc}.") from None
    header = [name.strip() for name in header]
    missing = [name for name in (time_column, value_column) if name not in header]
    if missing:
        raise InvalidInput(
            f"{label} has no column {', '.join(repr(m) for m in missing)}; the header has: "
            f"{', '.join(repr(h) for h in header)}.",
            hint="Name the columns with --time-column and --value-column.",
        )
    time_index, value_index = header.index(time_column), header.index(value_column)
    parsed = ParsedCsv(points={}, rows=0)
    first_line: dict[dt.datetime, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            parsed.rows += 1
            if parsed.rows > MAX_ROWS:
                raise InvalidInput(
                    f"{label} has more than {MAX_ROWS} rows.",
                    hint="Split the file and import it in parts.",
                )
            _parse_row(
                parsed,
                row,
                line,
                time_index,
                value_index,
                time_column,
                value_column,
                on_duplicate,
                first_line,
            )
    except csv.Error as exc:
        parsed.problems.append(f"line {reader.line_num}: not valid CSV ({exc})")
    if parsed.rows == 0 and not parsed.problems:
        raise InvalidInput(f"{label} has a header but no data rows.")
    return parsed


def _parse_row(
    parsed: ParsedCsv,
    row: list[str],
    line: int,
    time_index: int,
    value_index: int,
    time_column: str,
    value_column: str,
    on_duplicate: str,
    first_line: dict[dt.datetime, int],
) -> None:
    if len(row) <= max(time_index, value_index):
        parsed.problems.append(
            f"line {line}: {len(row)} fields, expected at least "
            f"{max(time_index, value_index) + 1}"
        )
        return
    try:
        moment = parse_timestamp(row[time_index])
    except ValueError:
        parsed.problems.append(
            f"line {line}: invalid {time_column} {row[time_index]!r}; use "
            "an ISO date (2024-01-31) or date-time"
        )
        return
    try:
        value = parse_value(row[value_index])
    except ValueError:
        parsed.problems.append(
            f"line {line}: invalid {value_column} {row[value_index]!r}; "
            "expected a finite number"
        )
        return
    if moment in parsed.points:
        parsed.duplicates += 1
        if on_duplicate == "error":
            parsed.problems.append(
                f"line {line}: duplicate {time_column} {row[time_index]!r} "
                f"(first on line {first_line[moment]}); pass "
                "--on-duplicate sum or last"
            )
            return
        merged = parsed.points[moment] + value if on_duplicate == "sum" else value
        if not math.isfinite(merged):
            parsed.problems.append(
                f"line {line}: the sum for {time_column} {row[time_index]!r} is not "
                "a finite number"
            )
            return
        parsed.points[moment] = merged
        return
    first_line[moment] = line
    parsed.points[moment] = value


def import_csv(
    session: Session,
    tenant: Tenant,
    metric: str,
    source: str | Path,
    *,
    time_column: str = "date",
    value_column: str = "value",
    on_duplicate: str = "error",
) -> dict[str, Any]:
    """Load a CSV into `metric_points`; any invalid row rejects the whole file."""
    parsed = read_csv(
        source,
        time_column=time_column,
        value_column=value_column,
        on_duplicate=on_duplicate,
    )
    return store_points(session, tenant, metric, parsed)


def read_csv(
    source: str | Path,
    *,
    time_column: str = "date",
    value_column: str = "value",
    on_duplicate: str = "error",
) -> ParsedCsv:
    """Read and validate a whole CSV file; raise `InvalidInput` listing bad rows.

    Callers parse before opening a transaction, so a large file holds no lock
    while it is read."""
    text, label = _read_text(source)
    parsed = parse_csv(
        text,
        label,
        time_column=time_column,
        value_column=value_column,
        on_duplicate=on_duplicate,
    )
    if parsed.problems:
        shown = parsed.problems[:MAX_REPORTED_PROBLEMS]
        more = len(parsed.problems) - len(shown)
        raise InvalidInput(
            f"{label}: {len(parsed.problems)} invalid rows, nothing imported:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else ""),
            hint="\nFix the rows and import the file again.",
        )
    return parsed


def store_points(
    session: Session, tenant: Tenant, metric: str, parsed: ParsedCsv
) -> dict[str, Any]:
    """Write parsed points; points already stored at the same time are replaced by
    the file's value, so importing a refreshed export again is safe."""
    validate_metric_name(metric)
    existing = set(
        session.scalars(
            select(MetricPoint.ts).where(
                MetricPoint.tenant_id == tenant.id, MetricPoint.metric == metric
            )
        )
    )
    replaced = [moment for moment in parsed.points if moment in existing]
    if replaced:
        for start in range(0, len(replaced), 500):
            session.execute(
                delete(MetricPoint).where(
                    MetricPoint.tenant_id == tenant.id,
                    MetricPoint.metric == metric,
                    MetricPoint.ts.in_(replaced[start : start + 500]),
                )
            )
    rows = [
        {"tenant_id": tenant.id, "metric": metric, "ts": moment, "value": value}
        for moment, value in sorted(parsed.points.items())
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(MetricPoint), rows[start : start + 5000])
    session.flush()
    moments = sorted(parsed.points)
    return {
        "tenant": tenant.slug,
        "metric": metric,
        "rows": parsed.rows,
        "points": len(rows),
        "inserted": len(rows) - len(replaced),
        "replaced": len(replaced),
        "duplicates_merged": parsed.duplicates,
        "first": moments[0],
        "last": moments[-1],
    }


def list_metrics(session: Session, tenant: Tenant) -> list[dict[str, Any]]:
    query = (
        select(
            MetricPoint.metric,
            func.count(),
            func.min(MetricPoint.ts),
            func.max(MetricPoint.ts),
        )
        .where(MetricPoint.tenant_id == tenant.id)
        .group_by(MetricPoint.metric)
        .order_by(MetricPoint.metric)
    )
    from qml_cli.core.models import UtcDateTime

    convert = UtcDateTime().process_result_value
    dialect = session.get_bind().dialect
    return [
        {
            "metric": metric,
            "points": count,
            "first": _as_utc(first, convert, dialect),
            "last": _as_utc(last, convert, dialect),
        }
        for metric, count, first, last in session.execute(query)
    ]


def _as_utc(value, convert, dialect):
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return convert(value, dialect)


def load_series(
    session: Session, tenant: Tenant, metric: str, *, since: dt.datetime | None = None
) -> tuple[list[dt.datetime], list[float]]:
    """Return the metric's (timestamps, values) in time order; `NotFound` if empty."""
    query = select(MetricPoint.ts, MetricPoint.value).where(
        MetricPoint.tenant_id == tenant.id, MetricPoint.metric == metric
    )
    if since is not None:
        query = query.where(MetricPoint.ts >= since)
    rows = session.execute(query.order_by(MetricPoint.ts)).all()
    if not rows:
        raise NotFound(
            f"tenant {tenant.slug!r} has no data for metric {metric!r}.",
            hint=f"Import it with: qml data import {tenant.slug} {metric} FILE.csv",
        )
    return [row[0] for row in rows], [row[1] for row in rows]
