"""Hostile input and awkward states found by trying qml as a new operator would."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core.db import session_scope

runner = CliRunner()


def invoke(*args: str, **kwargs):
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)


def test_markup_in_tenant_name_prints_literally(sqlite_engine):
    assert invoke("tenants", "create", "delta", "--name", "[/nope]").exit_code == 0
    result = invoke("tenants", "list")
    assert result.exit_code == 0
    assert "[/nope]" in result.output


def test_control_characters_are_escaped_in_tables():
    from qml_cli.cli.output import plain

    assert plain("evil\x1b[31mRED\x07").plain == "evil\\x1b[31mRED\\x07"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("prediction=99999999999999999999", "invalid cost"),
        ("nosuchop=3", "unknown operation 'nosuchop'"),
        ("prediction=-1", "invalid --set"),
    ],
)
def test_seed_ml_config_rejects_bad_cost(sqlite_engine, setting, message):
    result = invoke("seed", "ml-config", "--set", setting)
    assert result.exit_code == 2
    assert message in result.output


def test_command_before_migrate_says_migrate(sqlite_url):
    result = invoke("tenants", "list")
    assert result.exit_code == 1
    assert "does not match this qml" in result.output
    assert "Run: qml db migrate" in result.output


def test_migrate_to_lower_revision_points_to_downgrade(sqlite_engine):
    result = invoke("db", "migrate", "--to", "003")
    assert result.exit_code == 2
    assert "qml db downgrade --to 003" in result.output


def test_missing_sqlite_folder_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/typo/qml.sqlite3")
    result = invoke("db", "current")
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "typo").exists()


def test_directory_as_sqlite_database_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}")
    result = invoke("db", "current")
    assert result.exit_code == 2
    assert "is a directory" in result.output


@pytest.mark.parametrize("url", ["postgresql://u:p@[::1", "not a url"])
def test_malformed_database_url_is_rejected(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    result = invoke("db", "current")
    assert result.exit_code == 2
    assert "invalid DATABASE_URL" in result.output
    assert ":p@" not in result.output


def test_config_check_lists_every_problem_at_once(tmp_path, sqlite_engine):
    env_file = tmp_path / "junk.env"
    env_file.write_text(
        "ML_CACHE_TTL=soon\nJWT_SECRET=your-super-secret-key\nENCRYPTION_KEY=short\n"
    )
    result = invoke("--env-file", str(env_file), "config", "check", "--json")
    report = json.loads(result.stdout)
    errors = {f["setting"] for f in report["findings"] if f["level"] == "error"}
    assert result.exit_code == 1
    assert errors == {"ML_CACHE_TTL", "JWT_SECRET", "ENCRYPTION_KEY"}


def test_config_show_runs_with_invalid_value(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("ML_CACHE_TTL=soon\n")
    result = invoke("--env-file", str(env_file), "config", "show", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert result.exit_code == 2
    assert rows["ML_CACHE_TTL"]["value"] == "(invalid, see below)"


def test_log_level_from_env_file_is_used(tmp_path):
    import logging

    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\n")
    invoke("config", "show")
    assert logging.getLogger("qml").level == logging.DEBUG
    logging.getLogger("qml").handlers.clear()


def test_plans_file_directory_is_rejected(tmp_path, sqlite_engine):
    result = invoke("seed", "plans", "--from", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.output


def test_huge_prediction_id_is_not_found(sqlite_engine):
    result = invoke("predict", "show", "99999999999999999999999")
    assert result.exit_code == 2
    assert "not found" in result.output


@pytest.fixture
def tenant(sqlite_engine):
    assert invoke("tenants", "create", "acme").exit_code == 0
    return "acme"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("date,value\n9999-12-31T23:59:59-05:00,1\n", "line 2: invalid date"),
        ("date,value\n2024-01-01,1_000\n", "line 2: invalid value '1_000'"),
        ("date,value\n2024-01-01,\u0661\u0662\n", "line 2: invalid value"),
        ("date,value\n2024-01-01,\uff15\n", "line 2: invalid value"),
        ('date,value\n2024-01-01,"1\n2024-01-02,2\n', "not valid CSV"),
        ("date,value\n2024-01-01," + "9" * 200_000 + "\n", "not valid CSV"),
    ],
)
def test_import_rejects_awkward_rows(tmp_path, tenant, content, message):
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    result = invoke("data", "import", "acme", "sales", str(path))
    assert result.exit_code == 2
    assert message in result.output


def test_import_sum_overflow_is_rejected(tmp_path, tenant):
    path = tmp_path / "in.csv"
    path.write_text("date,value\n2024-01-01,1e308\n2024-01-01,1e308\n")
    result = invoke(
        "data", "import", "acme", "sales", str(path), "--on-duplicate", "sum"
    )
    assert result.exit_code == 2
    assert "is not a finite number" in result.output


def test_import_directory_says_directory(tmp_path, tenant):
    result = invoke("data", "import", "acme", "sales", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.output


def test_fixed_time_runs_once_when_clocks_go_back():
    from qml_cli.core.predictions import next_fire

    first_run = dt.datetime(2027, 10, 31, 0, 31, tzinfo=dt.UTC)  # 02:31 CEST
    fire = next_fire("30 2 * * *", "Europe/Berlin", first_run)
    assert fire == dt.datetime(2027, 11, 1, 1, 30, tzinfo=dt.UTC)


def test_wildcard_hour_keeps_running_when_clocks_go_back():
    from qml_cli.core.predictions import next_fire

    after = dt.datetime(2027, 10, 31, 0, 45, tzinfo=dt.UTC)
    fire = next_fire("*/30 * * * *", "Europe/Berlin", after)
    assert fire == dt.datetime(2027, 10, 31, 1, 0, tzinfo=dt.UTC)


def _due_predictions(tmp_path, count=2):
    csv_path = tmp_path / "s.csv"
    rows = [
        f"{dt.date(2024, 1, 1) + dt.timedelta(days=d)},{100 + d % 7}" for d in range(60)
    ]
    csv_path.write_text("date,value\n" + "\n".join(rows) + "\n")
    invoke("data", "import", "acme", "sales", str(csv_path))
    for index in range(count):
        invoke(
            "predict",
            "create",
            "acme",
            f"p{index}",
            "--metric",
            "sales",
            "--horizon",
            "5",
            "--start",
            "now",
        )


def test_bad_stored_cost_fails_each_run(tmp_path, tenant):
    _due_predictions(tmp_path)
    with session_scope() as session:
        session.execute(
            text("UPDATE ml_config SET value = :v WHERE key = 'operation_costs'"),
            {"v": json.dumps({"prediction": 10**12})},
        )
    result = invoke("predict", "run", "--due", "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 1
    assert summary["failed"] == 2
    assert summary["still_due"] == 0
    assert "too large" in summary["predictions"][0]["error"]


def test_non_finite_forecast_fails_and_charges_nothing(tmp_path, tenant):
    csv_path = tmp_path / "big.csv"
    rows = [
        f"{dt.date(2024, 1, 1) + dt.timedelta(days=d)},{1e300 * (1 + d % 7)}"
        for d in range(60)
    ]
    csv_path.write_text("date,value\n" + "\n".join(rows) + "\n")
    invoke("data", "import", "acme", "sales", str(csv_path))
    invoke("predict", "create", "acme", "big", "--metric", "sales", "--start", "now")
    summary = json.loads(invoke("predict", "run", "--due", "--json").stdout)
    status = json.loads(invoke("credits", "status", "acme", "--json").stdout)
    outcome = summary["predictions"][0]
    assert outcome["status"] in ("failed", "success")
    if outcome["status"] == "success":  # the engine coped: the numbers are finite
        shown = json.loads(invoke("predict", "show", "1", "--json").stdout)
        assert None not in shown["result"]["point"]
    else:
        assert status["available"] == 30


def test_reader_is_not_blocked_by_sqlite_writer(tenant):
    from qml_cli.core.db import get_engine

    engine = get_engine()
    with engine.connect() as writer:
        writer.exec_driver_sql("UPDATE tenants SET name = 'x'")  # BEGIN IMMEDIATE held
        with session_scope(readonly=True) as session:
            assert session.execute(text("SELECT COUNT(*) FROM tenants")).scalar() == 1
        writer.rollback()


def test_run_id_of_claimed_prediction_exits_5(tmp_path, tenant):
    from sqlalchemy import update

    from qml_cli.core.models import AutoPrediction

    _due_predictions(tmp_path, count=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    with session_scope() as session:
        session.execute(
            update(AutoPrediction).values(claimed_by="other:1", claimed_until=later)
        )
    result = invoke("predict", "run", "--id", "1")
    assert result.exit_code == 5
    assert "being run by other:1" in result.output


def test_interrupt_exits_130(sqlite_engine, monkeypatch):
    from qml_cli.core import tenants

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tenants, "list_tenants", interrupted)
    result = runner.invoke(app, ["tenants", "list"])
    assert result.exit_code == 130
    assert os.environ.get("QML_FAKE_NOW") is None


def test_grant_expiry_out_of_range_exits_2(tenant):
    result = invoke(
        "credits", "grant", "acme", "1", "--reason", "ok", "--expires", "9999-12-31"
    )
    assert result.exit_code == 2
    assert "out of range" in result.output


def test_grant_expiry_basic_date_means_end_of_day(tenant):
    result = invoke(
        "credits",
        "grant",
        "acme",
        "1",
        "--reason",
        "ok",
        "--expires",
        "20270331",
        "--json",
    )
    assert json.loads(result.stdout)["expires_at"] == "2027-04-01T00:00:00+00:00"


def test_grant_reason_with_escape_is_rejected(tenant):
    result = invoke("credits", "grant", "acme", "1", "--reason", "evil\x1b[31m")
    assert result.exit_code == 2
    assert "invalid grant reason" in result.output


def test_set_plan_to_current_plan_writes_nothing(tenant):
    before = json.loads(invoke("credits", "history", "acme", "--json").stdout)
    result = invoke("tenants", "set-plan", "acme", "standard")
    after = json.loads(invoke("credits", "history", "acme", "--json").stdout)
    assert result.exit_code == 2
    assert len(after) == len(before)


def test_json_error_is_printed_on_stdout(sqlite_engine):
    result = invoke("credits", "status", "nobody", "--json")
    document = json.loads(result.stdout)
    assert result.exit_code == 2
    assert document["exit_code"] == 2
    assert "tenant 'nobody' not found" in document["error"]


@pytest.mark.parametrize("weight", ["1e308", "1e200"])
def test_overflowing_qubo_is_rejected(tmp_path, weight):
    path = tmp_path / "big.json"
    path.write_text(f'{{"Q": [[{weight},{weight}],[{weight},{weight}]]}}')
    result = invoke("quantum", "qaoa", str(path), "--p", "1")
    assert result.exit_code == 2
    assert "Scale the coefficients down" in result.output


def test_maxcut_edges_with_bom_keep_first_edge(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_bytes(b"\xef\xbb\xbf0,1\n1,2\n")
    result = invoke("quantum", "maxcut", str(path))
    assert result.exit_code == 0
    assert "(2 edges)" in result.output


def test_non_object_manifest_is_skipped(sqlite_engine, tmp_path):
    folder = tmp_path / "home" / "backups" / "x"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("[]")
    result = invoke("backup", "list")
    assert result.exit_code == 0


def test_unreachable_database_exits_4_in_backup(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x")
    result = invoke("backup", "create")
    assert result.exit_code == 4
    assert "database unreachable" in result.output


def test_out_of_range_id_exits_2(sqlite_engine):
    result = invoke("insight", "show", "99999999999999999999999")
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "env_file", ["/tmp/x\nMAILTO=evil@example.com", "relative.env"]
)
def test_cron_print_rejects_unsafe_env_file(env_file):
    result = invoke("cron", "print", "--env-file", env_file)
    assert result.exit_code == 2
    assert "invalid --env-file" in result.output


def test_health_serve_on_busy_port_exits_2():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("health", "serve", "--port", str(port))
    assert result.exit_code == 2
    assert "cannot listen on" in result.output
