"""`qml insight`: charging, caching and storage on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core.db import session_scope
from qml_cli.core.models import Insight, MlCreditHold

runner = CliRunner()
ALL_TYPES_COST = 10  # seeded defaults: segmentation 2, the eight other types 1 each


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def write_csv(path, values, start=dt.date(2024, 1, 1)) -> str:
    lines = ["date,value"] + [
        f"{start + dt.timedelta(days=i)},{v:.3f}" for i, v in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def setup_tenant(tmp_path, slug="acme"):
    rng = np.random.default_rng(1)
    n = 120
    weekly = np.array([0, 2, 4, 3, 6, 15, -12] * 18)[:n]
    sales = 100 + weekly + rng.normal(0, 2, n)
    sales[70:] += 30
    visits = 50 + rng.normal(0, 3, n)
    assert invoke("tenants", "create", slug, "--plan", "quantum_plus").exit_code == 0
    for name, values in (("sales", sales), ("visits", visits)):
        path = write_csv(tmp_path / f"{name}.csv", values)
        assert invoke("data", "import", slug, name, path).exit_code == 0


def available(slug="acme") -> int:
    return json.loads(invoke("credits", "status", slug, "--json").output)["available"]


def run_json(*extra: str):
    result = invoke("insight", "run", "acme", "sales", "--json", *extra)
    return result, json.loads(result.output) if result.exit_code == 0 else None


def count_rows() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Insight))


def test_run_charges_and_stores(tmp_path, engine):
    setup_tenant(tmp_path)
    result, document = run_json()
    assert result.exit_code == 0
    assert document["cached"] is False
    assert document["credits_charged"] == ALL_TYPES_COST
    assert available() == 300 - ALL_TYPES_COST
    shift = [f for f in document["findings"] if f["type"] == "changepoint"]
    assert shift[0]["evidence"]["timestamp"] == "2024-03-11"
    assert count_rows() == len(document["findings"]) + 1
    assert invoke("credits", "audit").exit_code == 0


def test_run_reuses_cached_result_free(tmp_path, engine):
    setup_tenant(tmp_path)
    _, first = run_json()
    result, second = run_json()
    assert result.exit_code == 0
    assert second["cached"] is True
    assert second["credits_charged"] == 0
    assert second["run_id"] == first["run_id"]
    assert available() == 300 - ALL_TYPES_COST


def test_run_other_options_charge_again(tmp_path, sqlite_engine):
    setup_tenant(tmp_path)
    run_json()
    _, second = run_json("--max", "3")
    assert second["cached"] is False
    assert available() == 300 - 2 * ALL_TYPES_COST


def test_cache_expires_after_ttl(tmp_path, sqlite_engine, monkeypatch):
    setup_tenant(tmp_path)
    monkeypatch.setenv("ML_CACHE_TTL", "60")
    monkeypatch.setenv("QML_FAKE_NOW", "2030-01-01T00:00:00+00:00")
    run_json("--types", "trend")
    monkeypatch.setenv("QML_FAKE_NOW", "2030-01-01T00:00:59+00:00")
    assert run_json("--types", "trend")[1]["cached"] is True
    monkeypatch.setenv("QML_FAKE_NOW", "2030-01-01T00:01:01+00:00")
    assert run_json("--types", "trend")[1]["cached"] is False


@pytest.mark.redis
def test_run_caches_in_redis(tmp_path, pg_engine, redis_url, monkeypatch):
    import redis

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ML_CACHE_TTL", "120")
    setup_tenant(tmp_path)
    _, first = run_json("--types", "anomaly,trend")
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("qml:insight:*")
    assert len(keys) == 1
    assert 0 < client.ttl(keys[0]) <= 120
    rows = count_rows()
    _, second = run_json("--types", "anomaly,trend")
    assert second["cached"] is True
    assert second["run_id"] == first["run_id"]
    assert count_rows() == rows
    client.flushdb()
    assert run_json("--types", "anomaly,trend")[1]["cached"] is False


def test_not_enough_credits_exits_3(tmp_path, engine):
    setup_tenant(tmp_path)
    spent = invoke(
        "credits",
        "consume",
        "acme",
        "295",
        "--operation",
        "test",
        "--idempotency-key",
        "spend-1",
    )
    assert spent.exit_code == 0
    result = invoke("insight", "run", "acme", "sales")
    assert result.exit_code == 3
    assert "5 credits available" in result.output
    assert available() == 5
    assert count_rows() == 0


def test_failure_releases_hold(tmp_path, sqlite_engine, monkeypatch):
    from qml_cli.core.insights import runner as insight_runner

    setup_tenant(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("analysis failed")

    monkeypatch.setattr(insight_runner, "_analyse", broken)
    with pytest.raises(RuntimeError, match="analysis failed"):
        insight_runner.run_insights("acme", "sales")
    assert available() == 300
    assert count_rows() == 0
    with session_scope() as session:
        statuses = session.scalars(select(MlCreditHold.status)).all()
    assert statuses == ["released"]


def test_type_costs_follow_seeded_config(tmp_path, sqlite_engine):
    from qml_cli.core import seeds

    setup_tenant(tmp_path)
    with session_scope() as session:
        seeds.seed_ml_config(session, {"anomaly": 3, "trend": 4})
    _, document = run_json("--types", "anomaly,trend")
    assert document["credits_charged"] == 7


def test_credits_disabled_charge_nothing(tmp_path, sqlite_engine, monkeypatch):
    setup_tenant(tmp_path)
    monkeypatch.setenv("ML_CREDITS_ENABLED", "false")
    _, document = run_json()
    assert document["credits_charged"] == 0
    assert available() == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--types", "trend,forecast"], "unknown insight type forecast"),
        (["--window", "90 days"], "invalid window '90 days'"),
        (["--max", "0"], "invalid --max 0"),
    ],
)
def test_run_rejects_bad_options(tmp_path, sqlite_engine, args, message):
    setup_tenant(tmp_path)
    result = invoke("insight", "run", "acme", "sales", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert available() == 300


def test_run_unknown_metric_exits_2(tmp_path, sqlite_engine):
    setup_tenant(tmp_path)
    result = invoke("insight", "run", "acme", "orders")
    assert result.exit_code == 2
    assert "no data for metric 'orders'" in result.output


def test_list_and_show(tmp_path, sqlite_engine):
    setup_tenant(tmp_path)
    _, document = run_json("--types", "changepoint,seasonality")
    listed = json.loads(invoke("insight", "list", "acme", "--json").output)
    assert {row["type"] for row in listed} == {"changepoint", "seasonality"}
    shown = json.loads(invoke("insight", "show", str(listed[0]["id"]), "--json").output)
    assert shown["run_id"] == document["run_id"]
    run = json.loads(
        invoke("insight", "show", str(document["run_id"]), "--json").output
    )
    assert len(run["findings"]) == 2
    assert invoke("insight", "show", "999").exit_code == 2


def test_list_hides_low_confidence(tmp_path, sqlite_engine, monkeypatch):
    setup_tenant(tmp_path)
    # A backtest sign test over 14 points cannot reach confidence 1.
    monkeypatch.setenv("SQD_CONFIDENCE", "1.0")
    _, document = run_json("--types", "prediction")
    assert [f["low_confidence"] for f in document["findings"]] == [True]
    assert json.loads(invoke("insight", "list", "acme", "--json").output) == []
    assert (
        len(json.loads(invoke("insight", "list", "acme", "--all", "--json").output))
        == 1
    )


def test_run_table_output(tmp_path, sqlite_engine):
    setup_tenant(tmp_path)
    result = invoke("insight", "run", "acme", "sales", "--types", "changepoint")
    assert result.exit_code == 0
    assert "Insight run 1 of acme/sales (1 credits charged)." in result.output
    assert "From 2024-03-11 the level shifted up" in result.output
