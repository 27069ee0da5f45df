"""`qml deploy verify` and `qml deploy record`."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import delete, func, select, text
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import deploy, releases, smoke
from qml_cli.core.db import session_scope
from qml_cli.core.health_server import HealthServer
from qml_cli.core.models import (
    Insight,
    MetricPoint,
    MlConfig,
    MlUsageHistory,
    PredictionRun,
    Release,
    Tenant,
)
from qml_cli.errors import Conflict, InvalidInput

runner = CliRunner()
JOB_COMMANDS = (
    ["credits", "reset-monthly"],
    ["predict", "run", "--due"],
    ["logs", "cleanup"],
    ["backup", "create"],
)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def prepare(engine) -> None:
    """Run every scheduled job once, as cron would after the first deployment."""
    for command in JOB_COMMANDS:
        result = invoke(*command)
        assert result.exit_code == 0, result.output


def items(report: dict) -> dict[str, dict]:
    return {item["check"]: item for item in report["items"]}


def failed(report: dict) -> list[str]:
    return [item["check"] for item in report["items"] if item["status"] == "fail"]


def test_verify_passes_on_fresh_seeded_database(engine):
    prepare(engine)

    result = invoke("deploy", "verify", "--json")

    report = json.loads(result.output)
    assert result.exit_code == 0, failed(report)
    assert report["ok"] is True
    statuses = {key: item["status"] for key, item in items(report).items()}
    assert statuses.pop("redis") == "skip"
    assert statuses.pop("endpoints") == "skip"
    assert set(statuses.values()) == {"pass"}


def test_verify_fails_on_dropped_index(engine):
    prepare(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_tenants_plan"))

    result = invoke("deploy", "verify", "--json")

    report = json.loads(result.output)
    assert result.exit_code == 1
    assert failed(report) == ["indexes"]
    assert "index ix_tenants_plan on tenants" in items(report)["indexes"]["detail"]


def test_verify_fails_without_seeded_costs(engine):
    prepare(engine)
    with session_scope(engine) as session:
        session.execute(delete(MlConfig))

    report = deploy.verify(engine=engine)

    assert "seeds" in failed(report)
    assert "qml seed ml-config" in items(report)["seeds"]["detail"]


def test_verify_fails_on_pending_migration(sqlite_url):
    from qml_cli.core import migrate
    from qml_cli.core.db import make_engine

    engine = make_engine(sqlite_url)
    migrate.upgrade("006", engine)

    report = deploy.verify(engine=engine, skip=("smoke-insight", "smoke-prediction"))

    assert "migrations" in failed(report)
    assert "Run: qml db migrate" in items(report)["migrations"]["detail"]


def test_verify_without_jobs_names_each_job(engine):
    invoke("backup", "create")

    report = deploy.verify(engine=engine)

    assert failed(report) == ["jobs"]
    assert "predict-run-due never ran" in items(report)["jobs"]["detail"]


def test_verify_skip_leaves_item_out(engine):
    invoke("backup", "create")

    report = deploy.verify(engine=engine, skip=("jobs",))

    assert report["ok"] is True
    assert items(report)["jobs"]["status"] == "skip"


def test_verify_rejects_old_backup(engine, monkeypatch):
    prepare(engine)
    monkeypatch.setenv("QML_FAKE_NOW", "2099-01-01T00:00:00Z")

    report = deploy.verify(engine=engine, skip=("jobs",))

    assert failed(report) == ["backup"]
    assert "h old" in items(report)["backup"]["detail"]


def test_verify_skips_database_items_when_unreachable(monkeypatch):
    from qml_cli.core import settings
    from qml_cli.core.db import make_engine

    url = "postgresql+psycopg://postgres@127.0.0.1:1/qml"
    monkeypatch.setenv("DATABASE_URL", url)
    settings.reset_settings()

    report = deploy.verify(engine=make_engine(url))

    assert failed(report) == ["database"]
    assert items(report)["migrations"]["detail"] == "database unreachable"


def test_verify_rejects_unknown_skip(sqlite_engine):
    result = invoke("deploy", "verify", "--skip", "coffee")

    assert result.exit_code == 2
    assert "unknown check coffee" in result.output


@pytest.fixture
def health_server(sqlite_engine):
    server = HealthServer("127.0.0.1", 0, sqlite_engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_verify_checks_deployed_endpoints(sqlite_engine, health_server):
    prepare(sqlite_engine)

    report = deploy.verify(engine=sqlite_engine, url=health_server.url)

    assert items(report)["endpoints"]["status"] == "pass"
    assert (
        items(report)["endpoints"]["detail"]
        == "/health pass, /livez pass, /readyz pass"
    )


def test_verify_fails_on_unanswered_url(sqlite_engine):
    report = deploy.verify(
        engine=sqlite_engine, url="http://127.0.0.1:1", skip=("jobs", "backup")
    )

    assert failed(report) == ["endpoints"]
    assert "did not respond" in items(report)["endpoints"]["detail"]


def _counts(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Tenant, MetricPoint, Insight, PredictionRun, MlUsageHistory)
        }


def test_smoke_runs_leave_no_rows(engine):
    before = _counts(engine)

    insight = smoke.smoke_insight(engine)
    prediction = smoke.smoke_prediction(engine)

    assert "rolled back" in insight
    assert "rolled back" in prediction
    assert _counts(engine) == before


def test_record_stores_release_with_backup(engine):
    from qml_cli.core import backup, migrate

    release = releases.record("1.4.0", engine=engine)

    assert release["schema_revision"] == migrate.head_revision()
    assert release["replayed"] is False
    manifest = backup.read_manifest(backup.find_backup(release["backup_id"]))
    assert manifest["kind"] == "release"


def test_record_same_version_twice_changes_nothing(engine):
    first = releases.record("1.4.0", engine=engine)

    again = releases.record("1.4.0", engine=engine)

    assert again["replayed"] is True
    assert again["backup_id"] == first["backup_id"]
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 1


def test_record_conflicting_revision_is_rejected(engine):
    releases.record("1.4.0", engine=engine)
    with session_scope(engine) as session:
        session.execute(Release.__table__.update().values(schema_revision="001"))

    with pytest.raises(Conflict):
        releases.record("1.4.0", engine=engine)


@pytest.mark.parametrize("version", ["", "1 4", "-1", "v" * 65, "1.4\n"])
def test_record_rejects_invalid_version(sqlite_engine, version):
    with pytest.raises(InvalidInput):
        releases.record(version, engine=sqlite_engine)


def test_cli_record_and_list(sqlite_engine):
    recorded = invoke("deploy", "record", "--version", "2.0.0", "--no-backup")
    listed = invoke("deploy", "list", "--json")

    assert recorded.exit_code == 0
    assert "backup none" in recorded.output
    assert [r["version"] for r in json.loads(listed.output)] == ["2.0.0"]
