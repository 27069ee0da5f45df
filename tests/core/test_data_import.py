"""`qml data import`: hostile CSV inputs are rejected with the line and nothing is written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app

runner = CliRunner()


@pytest.fixture
def tenant(engine):
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    return "acme"


def _import(tmp_path, content: bytes, *extra: str):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    return runner.invoke(app, ["data", "import", "acme", "sales", str(path), *extra])


def _stored_points() -> int:
    result = runner.invoke(app, ["data", "list", "acme", "--json"])
    return sum(item["points"] for item in json.loads(result.output))


HOSTILE = [
    ("bad date", b"date,value\n2024-01-01,1\n2024-13-45,2\n", "line 3: invalid date"),
    ("nan value", b"date,value\n2024-01-01,NaN\n", "line 2: invalid value 'NaN'"),
    ("infinite value", b"date,value\n2024-01-01,inf\n", "line 2: invalid value 'inf'"),
    (
        "text value",
        b"date,value\n2024-01-01,twelve\n",
        "line 2: invalid value 'twelve'",
    ),
    ("empty value", b"date,value\n2024-01-01,\n", "line 2: invalid value ''"),
    (
        "duplicate time",
        b"date,value\n2024-01-01,1\n2024-01-02,2\n2024-01-01,3\n",
        "line 4: duplicate date '2024-01-01' (first on line 2)",
    ),
    ("empty file", b"", "is empty"),
    ("header only", b"date,value\n", "has a header but no data rows"),
    (
        "non utf-8",
        b"date,value\n2024-01-01,1\n2024-01-02,\xff\n",
        "is not UTF-8: byte 0xff",
    ),
    ("missing columns", b"day,amount\n2024-01-01,1\n", "has no column 'date', 'value'"),
    ("short row", b"date,value\n2024-01-01\n", "line 2: 1 fields"),
    ("nul bytes", b"date,value\n2024-01-01,1\x00\n", "NUL bytes"),
    ("injection text", b"date,value\n2024-01-01,1); DROP TABLE tenants;--\n", "line 2"),
]


@pytest.mark.parametrize(
    ("case", "content", "message"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_import_rejects_hostile_input(tmp_path, tenant, case, content, message):
    result = _import(tmp_path, content)
    assert result.exit_code == 2
    assert message in result.output
    assert _stored_points() == 0


def test_import_valid_file_stores_points(tmp_path, tenant):
    result = _import(tmp_path, b"date,value\n2024-01-01,1.5\n2024-01-03,-2\n")
    assert result.exit_code == 0
    assert _stored_points() == 2


def test_import_sum_merges_duplicates(tmp_path, tenant):
    content = b"date,value\n2024-01-01,1\n2024-01-01,2.5\n"
    assert _import(tmp_path, content, "--on-duplicate", "sum").exit_code == 0
    points = json.loads(
        runner.invoke(app, ["data", "show", "acme", "sales", "--json"]).output
    )
    assert [p["value"] for p in points] == [3.5]


def test_import_last_keeps_last_duplicate(tmp_path, tenant):
    content = b"date,value\n2024-01-01,1\n2024-01-01,2.5\n"
    assert _import(tmp_path, content, "--on-duplicate", "last").exit_code == 0
    points = json.loads(
        runner.invoke(app, ["data", "show", "acme", "sales", "--json"]).output
    )
    assert [p["value"] for p in points] == [2.5]


def test_reimport_replaces_stored_points(tmp_path, tenant):
    _import(tmp_path, b"date,value\n2024-01-01,1\n")
    result = _import(tmp_path, b"date,value\n2024-01-01,7\n2024-01-02,8\n", "--json")
    report = json.loads(result.output)
    assert report["replaced"] == 1
    assert report["inserted"] == 1


def test_import_named_columns_and_timezones(tmp_path, tenant):
    content = b"day,amount\n2024-01-01T23:30:00-03:00,1\n2024-01-02T00:00:00Z,2\n"
    result = _import(
        tmp_path, content, "--time-column", "day", "--value-column", "amount"
    )
    assert result.exit_code == 0
    points = json.loads(
        runner.invoke(app, ["data", "show", "acme", "sales", "--json"]).output
    )
    assert [p["ts"] for p in points] == [
        "2024-01-02T00:00:00+00:00",
        "2024-01-02T02:30:00+00:00",
    ]


def test_import_from_stdin(tenant):
    result = runner.invoke(
        app,
        ["data", "import", "acme", "sales", "-"],
        input="date,value\n2024-01-01,4\n",
    )
    assert result.exit_code == 0
    assert _stored_points() == 1


def test_import_unknown_tenant_exits_2(tmp_path, engine):
    path = tmp_path / "x.csv"
    path.write_text("date,value\n2024-01-01,1\n")
    result = runner.invoke(app, ["data", "import", "ghost", "sales", str(path)])
    assert result.exit_code == 2
    assert "tenant 'ghost' not found" in result.output


@pytest.mark.parametrize(
    "metric", ["Sales", "1sales", "sales-x", "", "a" * 101, "s;drop"]
)
def test_import_rejects_bad_metric_name(tmp_path, tenant, metric):
    path = tmp_path / "x.csv"
    path.write_text("date,value\n2024-01-01,1\n")
    result = runner.invoke(app, ["data", "import", "acme", metric, str(path)])
    assert result.exit_code == 2
    assert "invalid metric name" in result.output
