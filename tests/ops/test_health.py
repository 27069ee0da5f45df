"""`qml health` and `qml health serve`, with real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from qml_cli.cli.app import app
from qml_cli.core import health, settings
from qml_cli.core.db import make_engine, session_scope
from qml_cli.core.health_server import HealthServer
from qml_cli.core.models import AutoPrediction, JobRun, PredictionRun, utcnow
from tests.ops.conftest import populate

runner = CliRunner()
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/qml"


def _status(document: dict, key: str) -> str:
    return document["checks"][key][0]["status"]


def _unreachable(monkeypatch):
    make_engine.cache_clear()
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_PG)
    settings.reset_settings()
    return make_engine(UNREACHABLE_PG)


def test_health_passes_on_migrated_database(engine):
    document = health.health(engine)

    assert document["status"] == "pass"
    assert set(document["checks"]) == {
        "database:responseTime",
        "database:schemaRevision",
        "ml_service:failedJobs",
        "ml_service:predictionSuccessRate",
        "quantum_engine:selftest",
    }
    latency = document["checks"]["database:responseTime"][0]
    assert latency["observedUnit"] == "ms"
    assert latency["observedValue"] > 0
    assert dt.datetime.fromisoformat(latency["time"]).tzinfo is not None


def test_cli_health_json_exits_0(sqlite_engine):
    result = runner.invoke(app, ["health", "--json"])

    assert result.exit_code == 0
    assert json.loads(result.output)["status"] == "pass"


def test_cli_health_exits_1_when_database_unreachable(monkeypatch):
    _unreachable(monkeypatch)

    result = runner.invoke(app, ["health", "--json"])

    assert result.exit_code == 1
    document = json.loads(result.output)
    assert _status(document, "database:responseTime") == "fail"
    assert (
        "database unreachable"
        in document["checks"]["database:responseTime"][0]["output"]
    )


def test_redis_checked_when_configured(sqlite_engine, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings.reset_settings()

    document = health.health(sqlite_engine, quantum=False)

    assert _status(document, "redis:responseTime") == "pass"


def test_unreachable_redis_fails(sqlite_engine, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    settings.reset_settings()

    document = health.health(sqlite_engine, quantum=False)

    assert document["status"] == "fail"
    assert _status(document, "redis:responseTime") == "fail"


def test_recent_failed_job_warns(engine):
    with session_scope(engine) as session:
        session.add(
            JobRun(
                job="backup-create",
                status="failed",
                started_at=utcnow(),
                counts={},
                error="disk full",
            )
        )

    document = health.health(engine, quantum=False)

    assert document["status"] == "warn"
    assert document["checks"]["ml_service:failedJobs"][0]["observedValue"] == 1
    assert "backup-create" in document["checks"]["ml_service:failedJobs"][0]["output"]


@pytest.mark.parametrize(
    ("successes", "failures", "expected"),
    [(10, 0, "pass"), (8, 2, "warn"), (2, 10, "fail"), (0, 3, "pass")],
)
def test_prediction_success_rate(engine, successes, failures, expected):
    populate(engine)
    with session_scope(engine) as session:
        prediction = session.query(AutoPrediction).first()
        for index in range(successes + failures):
            session.add(
                PredictionRun(
                    prediction_id=prediction.id,
                    tenant_id=prediction.tenant_id,
                    status="success" if index < successes else "failed",
                    started_at=utcnow(),
                )
            )

    document = health.health(engine, quantum=False)

    assert _status(document, "ml_service:predictionSuccessRate") == expected


def test_schema_behind_warns_and_is_not_ready(sqlite_url):
    from qml_cli.core import migrate

    engine = make_engine(sqlite_url)
    migrate.upgrade("006", engine)

    assert (
        _status(health.health(engine, quantum=False), "database:schemaRevision")
        == "warn"
    )
    assert health.readiness(engine)["status"] == "fail"


@pytest.fixture
def serve():
    servers = []

    def start(engine) -> HealthServer:
        server = HealthServer("127.0.0.1", 0, engine, quantum_ttl_s=300)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _get(server: HealthServer, path: str, method: str = "GET"):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


@pytest.mark.parametrize("path", ["/health", "/livez", "/readyz"])
def test_serve_answers_probes(sqlite_engine, serve, path):
    server = serve(sqlite_engine)

    response, body = _get(server, path)

    assert response.status == 200
    assert response.getheader("Content-Type") == "application/health+json"
    assert json.loads(body)["status"] == "pass"


def test_serve_health_includes_quantum_check(sqlite_engine, serve):
    response, body = _get(serve(sqlite_engine), "/health")

    assert "quantum_engine:selftest" in json.loads(body)["checks"]


def test_serve_head_has_no_body(sqlite_engine, serve):
    response, body = _get(serve(sqlite_engine), "/livez", method="HEAD")

    assert response.status == 200
    assert body == b""


def test_serve_unknown_path_is_404(sqlite_engine, serve):
    response, body = _get(serve(sqlite_engine), "/metrics")

    assert response.status == 404
    assert "use /health" in json.loads(body)["output"]


def test_serve_reports_503_when_database_down(serve, monkeypatch):
    server = serve(_unreachable(monkeypatch))

    ready, _ = _get(server, "/readyz")
    full, _ = _get(server, "/health")
    live, _ = _get(server, "/livez")

    assert ready.status == 503
    assert full.status == 503
    assert live.status == 200


@pytest.mark.slow
def test_cli_serve_process_stops_on_sigterm(sqlite_engine):
    process = subprocess.Popen(
        [sys.executable, "-m", "qml_cli", "health", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Serving health on http://127.0.0.1:"), (
            process.stderr.read()
        )
        port = int(line.split("http://127.0.0.1:")[1].split(" ")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/readyz")
        status = connection.getresponse().status
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)

    assert status == 200
    assert process.returncode == 0
    assert "Health server stopped." in stdout
