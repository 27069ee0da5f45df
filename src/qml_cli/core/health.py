"""The health document, in the format of the IETF draft "Health Check Response
Format for HTTP APIs" (draft-inadarei-api-health-check-06).

`status` is pass, warn or fail; `checks` maps "component:measurement" to a list of
results with observedValue, observedUnit, status and time. A component that cannot
be measured is a fail, except the optional ones (Redis when not configured, the
quantum self-test when it is not installed), which are left out or warn.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine

from qml_cli import __version__
from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.errors import QmlError

log = get_logger("health")
MEDIA_TYPE = "application/health+json"
SLOW_DATABASE_MS = 500.0
SLOW_REDIS_MS = 100.0
WINDOW = dt.timedelta(hours=24)
# Prediction success rate (percent) below which the ML service warns or fails.
WARN_SUCCESS_RATE = 90.0
FAIL_SUCCESS_RATE = 50.0
MIN_RUNS_FOR_RATE = 10
RANK = {"pass": 0, "warn": 1, "fail": 2}


def _result(
    component_type: str,
    value: Any,
    unit: str | None,
    status: str,
    now: dt.datetime,
    output: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "componentType": component_type,
        "observedValue": value,
        "status": status,
        "time": now.isoformat(),
    }
    if unit:
        result["observedUnit"] = unit
    if output:
        result["output"] = output
    return result


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def check_database(engine: Engine, now: dt.datetime) -> dict[str, list[dict]]:
    """Latency of `SELECT 1` (ms), and whether the schema is at the head revision."""
    from qml_cli.core import migrate
    from qml_cli.core.db import ping

    try:
        latency = _timed(lambda: ping(engine))
    except QmlError as exc:
        return {
            "database:responseTime": [
                _result("datastore", None, "ms", "fail", now, exc.message)
            ]
        }
    status = "pass" if latency < SLOW_DATABASE_MS else "warn"
    checks = {
        "database:responseTime": [
            _result("datastore", round(latency, 3), "ms", status, now)
        ]
    }
    current, head = migrate.current_revision(engine), migrate.head_revision()
    checks["database:schemaRevision"] = [
        _result(
            "datastore",
            current,
            None,
            "pass" if current == head else "warn",
            now,
            None
            if current == head
            else f"database at {current or 'base'}, head is {head}; "
            "run: qml db migrate",
        )
    ]
    return checks


def check_redis(url: str | None, now: dt.datetime) -> dict[str, list[dict]]:
    """Round trip of PING (ms); no entry when REDIS_URL is not set."""
    if not url:
        return {}
    from qml_cli.core.cache import ping_redis

    try:
        latency = ping_redis(url)
    except QmlError as exc:
        return {
            "redis:responseTime": [
                _result("datastore", None, "ms", "fail", now, exc.message)
            ]
        }
    status = "pass" if latency < SLOW_REDIS_MS else "warn"
    return {
        "redis:responseTime": [
            _result("datastore", round(latency, 3), "ms", status, now)
        ]
    }


def _has_tables(engine: Engine, *names: str) -> bool:
    with engine.connect() as connection:
        inspector = inspect(connection)
        return all(inspector.has_table(name) for name in names)


def check_ml_service(engine: Engine, now: dt.datetime) -> dict[str, list[dict]]:
    """Failed job runs and the prediction success rate over the last 24 hours."""
    from qml_cli.core.db import session_scope
    from qml_cli.core.models import JobRun, PredictionRun

    try:
        if not _has_tables(engine, "job_runs", "prediction_runs"):
            raise QmlError(
                "the schema has no job_runs or prediction_runs table; "
                "run: qml db migrate"
            )
        since = now - WINDOW
        with session_scope(engine) as session:
            failed_jobs = session.scalars(
                select(JobRun.job).where(
                    JobRun.started_at >= since,
                    JobRun.status.in_(("failed", "abandoned")),
                )
            ).all()
            outcomes = dict(
                session.execute(
                    select(PredictionRun.status, func.count())
                    .where(PredictionRun.started_at >= since)
                    .group_by(PredictionRun.status)
                ).all()
            )
    except QmlError as exc:
        return {
            "ml_service:failedJobs": [
                _result("component", None, None, "fail", now, exc.message)
            ]
        }
    jobs_output = ", ".join(sorted(set(failed_jobs))) or None
    checks = {
        "ml_service:failedJobs": [
            _result(
                "component",
                len(failed_jobs),
                None,
                "warn" if failed_jobs else "pass",
                now,
                f"failed in the last 24 h: {jobs_output}" if jobs_output else None,
            )
        ]
    }
    runs = outcomes.get("success", 0) + outcomes.get("failed", 0)
    rate = 100.0 * outcomes.get("success", 0) / runs if runs else None
    status = "pass"
    if rate is not None and runs >= MIN_RUNS_FOR_RATE:
        status = (
            "fail"
            if rate < FAIL_SUCCESS_RATE
            else "warn"
            if rate < WARN_SUCCESS_RATE
            else "pass"
        )
    checks["ml_service:predictionSuccessRate"] = [
        _result(
            "component",
            None if rate is None else round(rate, 2),
            "percent",
            status,
            now,
            f"{runs} prediction runs in the last 24 h",
        )
    ]
    return checks


def check_quantum(now: dt.datetime) -> dict[str, list[dict]]:
    """Run the quantum engine's self-test; report its wall time (ms) and the checks
    that failed."""
    try:
        from qml_cli.quantum.selftest import run_selftest
    except ImportError:
        return {
            "quantum_engine:selftest": [
                _result("component", None, None, "warn", now, "not available")
            ]
        }
    try:
        report = run_selftest()
    except Exception as exc:  # a broken engine is a failed check, not a crash
        log.error("quantum self-test raised", extra={"error": repr(exc)})
        return {
            "quantum_engine:selftest": [
                _result(
                    "component", None, None, "fail", now, f"{type(exc).__name__}: {exc}"
                )
            ]
        }
    failed = [item["name"] for item in report["checks"] if not item["ok"]]
    output = (
        f"failed: {', '.join(failed)}"
        if failed
        else f"{len(report['checks'])} checks passed"
    )
    return {
        "quantum_engine:selftest": [
            _result(
                "component",
                round(report["wall_time_s"] * 1000, 1),
                "ms",
                "fail" if failed else "pass",
                now,
                output,
            )
        ]
    }


def overall(checks: dict[str, list[dict]]) -> str:
    """Return the worst status of all checks: fail over warn over pass."""
    statuses = [item["status"] for results in checks.values() for item in results]
    return max(statuses, key=RANK.__getitem__, default="pass")


def health(engine: Engine | None = None, *, quantum: bool = True) -> dict[str, Any]:
    """Measure every component and return the health document."""
    from qml_cli.core.db import get_engine
    from qml_cli.core.settings import get_settings

    engine = engine or get_engine()
    now = clock.now()
    checks = check_database(engine, now)
    checks.update(check_redis(get_settings().values.get("REDIS_URL"), now))
    if "fail" not in {r["status"] for r in checks["database:responseTime"]}:
        checks.update(check_ml_service(engine, now))
    if quantum:
        checks.update(check_quantum(now))
    return {
        "status": overall(checks),
        "version": __version__.split(".")[0],
        "releaseId": __version__,
        "serviceId": "qml",
        "description": "Quantum ML service operations",
        "checks": checks,
    }


def readiness(engine: Engine | None = None) -> dict[str, Any]:
    """Readiness for traffic: database reachable at the head revision, and Redis
    when configured; the slower ML and quantum checks are left out."""
    from qml_cli.core.db import get_engine
    from qml_cli.core.settings import get_settings

    engine = engine or get_engine()
    now = clock.now()
    checks = check_database(engine, now)
    checks.update(check_redis(get_settings().values.get("REDIS_URL"), now))
    for item in checks.get("database:schemaRevision", []):
        if item["status"] != "pass":
            item["status"] = "fail"
    return {"status": overall(checks), "releaseId": __version__, "checks": checks}


def http_status(document: dict[str, Any]) -> int:
    """Return 200 for pass and warn and 503 for fail, within the draft's ranges
    (2xx-3xx for pass and warn, 4xx-5xx for fail)."""
    return 503 if document["status"] == "fail" else 200
