"""Smoke runs for `deploy verify`: a real insight and a real prediction on a scratch
tenant, inside one database transaction that is rolled back.

`rolled_back_database` points every `session_scope()` of this process at one
connection whose outer transaction is rolled back at the end, each scope in its
own SAVEPOINT, so the charged, stored runs leave nothing behind. It is meant for a
single-threaded command such as `deploy verify`, because the redirection applies
to the whole process while it lasts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import secrets
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.errors import CheckFailed

log = get_logger("smoke")
SMOKE_METRIC = "deploy_smoke"
SMOKE_DAYS = 120
SMOKE_CREDITS = 1000


@contextlib.contextmanager
def rolled_back_database(engine: Engine) -> Iterator[Connection]:
    """Route `session_scope()` to one connection and roll everything back at exit."""
    from qml_cli.core import db

    connection = engine.connect()
    outer = connection.begin()
    # Sessions bound to a connection inside a SAVEPOINT use their own SAVEPOINTs,
    # so their commits stay inside the outer transaction.
    connection.begin_nested()
    original = db.get_engine
    db.get_engine = lambda url=None: connection
    try:
        yield connection
    finally:
        db.get_engine = original
        outer.rollback()
        connection.close()


def smoke_series(days: int = SMOKE_DAYS) -> list[tuple[int, float]]:
    """Return a deterministic daily series with a trend, a weekly cycle and one
    outlier, as (day, value) pairs."""
    values = []
    for day in range(days):
        value = 200.0 + 0.8 * day + 25.0 * math.sin(2 * math.pi * day / 7)
        if day == days - 10:
            value += 400.0
        values.append((day, round(value, 2)))
    return values


def _scratch_tenant(now: dt.datetime) -> str:
    """Create a test tenant with credits and the smoke metric; return its slug."""
    from qml_cli.core import credits, tenants
    from qml_cli.core.db import session_scope
    from qml_cli.core.models import MetricPoint

    slug = f"deploy-smoke-{secrets.token_hex(4)}"
    start = (now - dt.timedelta(days=SMOKE_DAYS)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    with session_scope() as session:
        tenant = tenants.create_tenant(
            session,
            slug,
            name="deploy smoke test",
            plan_name="standard",
            timezone="UTC",
            is_test=True,
            now=now,
        )
        credits.grant(
            session,
            tenant,
            SMOKE_CREDITS,
            reason="deploy verify smoke run",
            key=f"{slug}-credits",
            now=now,
        )
        session.add_all(
            [
                MetricPoint(
                    tenant_id=tenant.id,
                    metric=SMOKE_METRIC,
                    ts=start + dt.timedelta(days=day),
                    value=value,
                )
                for day, value in smoke_series()
            ]
        )
    return slug


def _forget_cached_insight(document: dict[str, Any], slug: str) -> None:
    """Delete the Redis copy of the smoke insight, whose rows are rolled back."""
    from qml_cli.core.cache import get_redis
    from qml_cli.core.db import session_scope
    from qml_cli.core.insights.store import cache_key
    from qml_cli.core.tenants import get_tenant

    client = get_redis()
    if client is None:
        return
    with session_scope() as session:
        tenant_id = get_tenant(session, slug).id
    try:
        client.delete(cache_key(tenant_id, SMOKE_METRIC, document["fingerprint"]))
    except Exception as exc:  # the entry expires with ML_CACHE_TTL anyway
        log.warning("smoke insight cache entry not deleted", extra={"error": repr(exc)})


def smoke_insight(engine: Engine) -> str:
    """Run a trend and anomaly insight on a scratch tenant; return a summary."""
    from qml_cli.core.insights.runner import run_insights

    now = clock.now()
    with rolled_back_database(engine):
        slug = _scratch_tenant(now)
        document = run_insights(slug, SMOKE_METRIC, types="trend,anomaly", now=now)
        _forget_cached_insight(document, slug)
    _check_gone(engine, slug)
    if not document["findings"]:
        raise CheckFailed(
            "the smoke insight found nothing in a series with a trend and an outlier."
        )
    return (
        f"{len(document['findings'])} findings, {document['credits_charged']} "
        f"credits charged, {document['processing_time_ms']:.0f} ms; rolled back"
    )


def smoke_prediction(engine: Engine) -> str:
    """Create and run a 14-day forecast on a scratch tenant; return a summary."""
    from qml_cli.core import prediction_runs, predictions
    from qml_cli.core.db import session_scope
    from qml_cli.core.tenants import get_tenant

    now = clock.now()
    with rolled_back_database(engine):
        slug = _scratch_tenant(now)
        with session_scope() as session:
            prediction = predictions.create(
                session,
                get_tenant(session, slug),
                "deploy-smoke",
                metric=SMOKE_METRIC,
                horizon=14,
                start="now",
                now=now,
            )
            prediction_id = prediction.id
        outcome = prediction_runs.run_one(prediction_id, now=now)
    _check_gone(engine, slug)
    if outcome.status != "success":
        raise CheckFailed(
            f"the smoke prediction ended {outcome.status}: "
            f"{outcome.error or outcome.reason}"
        )
    return f"forecast ran, {outcome.credits} credits charged; rolled back"


def _check_gone(engine: Engine, slug: str) -> None:
    from qml_cli.core.db import session_scope
    from qml_cli.core.models import Tenant

    with session_scope(engine) as session:
        if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
            raise CheckFailed(
                f"scratch tenant {slug} survived the rollback.",
                hint="Remove it with: qml seed remove-test-data --yes",
            )
