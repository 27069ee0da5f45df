"""Stored insight runs: rows of the `insights` table and the result cache.

A run is one row of type `run` holding the summary and the selection, followed by
one row per finding whose `options` name the run. The cache maps a tenant, metric
and input fingerprint to the stored run document: in Redis (key
`qml:insight:<tenant id>:<metric>:<fingerprint>`, expiring after ML_CACHE_TTL) when
REDIS_URL is set, else the newest `run` row with that fingerprint younger than
ML_CACHE_TTL.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core.insights.finding import Finding
from qml_cli.core.logs import get_logger
from qml_cli.core.models import Insight, Tenant
from qml_cli.errors import NotFound

log = get_logger("insights.store")
RUN_TYPE = "run"


def cache_key(tenant_id: int, metric: str, fingerprint: str) -> str:
    return f"qml:insight:{tenant_id}:{metric}:{fingerprint}"


def store_run(
    session: Session,
    tenant: Tenant,
    metric: str,
    *,
    fingerprint: str,
    options: dict[str, Any],
    findings: list[Finding],
    selected: list[str],
    summary: dict[str, Any],
    credits_charged: int,
    processing_time_ms: float,
    now: dt.datetime,
) -> Insight:
    """Add the run row and one row per finding; return the run row (flushed)."""
    run = Insight(
        tenant_id=tenant.id,
        metric=metric,
        insight_type=RUN_TYPE,
        input_fingerprint=fingerprint,
        options=options,
        result={},
        confidence=1.0,
        low_confidence=False,
        credits_charged=credits_charged,
        processing_time_ms=processing_time_ms,
        created_at=now,
    )
    session.add(run)
    session.flush()
    ids = []
    for finding in findings:
        row = Insight(
            tenant_id=tenant.id,
            metric=metric,
            insight_type=finding.type,
            input_fingerprint=fingerprint,
            options={"run_id": run.id, "selected": finding.key in selected},
            result=finding.to_dict(),
            confidence=finding.confidence,
            low_confidence=finding.low_confidence,
            credits_charged=0,
            processing_time_ms=None,
            created_at=now,
        )
        session.add(row)
        session.flush()
        ids.append(row.id)
    run.result = {**summary, "finding_ids": ids}
    session.flush()
    return run


def run_document(session: Session, run: Insight, tenant_slug: str) -> dict[str, Any]:
    """Return a stored run as the document `insight run` prints."""
    rows = session.scalars(
        select(Insight)
        .where(Insight.id.in_(run.result.get("finding_ids", [])))
        .order_by(Insight.id)
    ).all()
    findings = [
        {"id": row.id, "selected": bool(row.options.get("selected")), **row.result}
        for row in rows
    ]
    return {
        "run_id": run.id,
        "tenant": tenant_slug,
        "metric": run.metric,
        "fingerprint": run.input_fingerprint,
        "created_at": run.created_at.isoformat(),
        "options": run.options,
        "credits_charged": run.credits_charged,
        "processing_time_ms": run.processing_time_ms,
        "cached": False,
        "selection": run.result.get("selection"),
        "summary": run.result.get("summary"),
        "findings": findings,
    }


def cached_run(
    session: Session,
    tenant: Tenant,
    metric: str,
    fingerprint: str,
    ttl_s: int,
    now: dt.datetime,
    client=None,
) -> dict[str, Any] | None:
    """Return the cached run document, or None on a miss or when the TTL is 0.
    An unreachable Redis is logged and the database is read instead."""
    if ttl_s <= 0:
        return None
    if client is not None:
        from redis import RedisError

        try:
            raw = client.get(cache_key(tenant.id, metric, fingerprint))
        except RedisError as exc:
            log.warning(
                "insight cache unreachable; reading the database",
                extra={
                    "operation": "insight_cache",
                    "tenant_id": tenant.id,
                    "error": str(exc),
                },
            )
        else:
            return None if raw is None else json.loads(raw)
    run = session.scalars(
        select(Insight)
        .where(
            Insight.tenant_id == tenant.id,
            Insight.metric == metric,
            Insight.insight_type == RUN_TYPE,
            Insight.input_fingerprint == fingerprint,
            Insight.created_at >= now - dt.timedelta(seconds=ttl_s),
        )
        .order_by(Insight.id.desc())
        .limit(1)
    ).first()
    return None if run is None else run_document(session, run, tenant.slug)


def cache_run(document: dict[str, Any], tenant_id: int, ttl_s: int, client) -> None:
    """Put a run document in Redis for `ttl_s` seconds; a failure is logged only."""
    if client is None or ttl_s <= 0:
        return
    from redis import RedisError

    key = cache_key(tenant_id, document["metric"], document["fingerprint"])
    try:
        client.set(key, json.dumps(document, default=str), ex=ttl_s)
    except RedisError as exc:
        log.warning(
            "insight cache write failed",
            extra={
                "operation": "insight_cache",
                "tenant_id": tenant_id,
                "error": str(exc),
            },
        )


def list_rows(
    session: Session, tenant: Tenant, *, include_low: bool, limit: int
) -> list[dict[str, Any]]:
    """Return the tenant's stored findings, newest first; low-confidence ones only
    when `include_low`."""
    query = select(Insight).where(
        Insight.tenant_id == tenant.id, Insight.insight_type != RUN_TYPE
    )
    if not include_low:
        query = query.where(Insight.low_confidence.is_(False))
    rows = session.scalars(query.order_by(Insight.id.desc()).limit(limit)).all()
    return [
        {
            "id": row.id,
            "run_id": row.options.get("run_id"),
            "metric": row.metric,
            "type": row.insight_type,
            "title": row.result.get("title"),
            "confidence": row.confidence,
            "low_confidence": row.low_confidence,
            "selected": bool(row.options.get("selected")),
            "detected": row.result.get("detected", True),
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


def show_row(session: Session, insight_id: int) -> dict[str, Any]:
    """Return one stored finding or run by id; raise `NotFound` otherwise."""
    row = session.get(Insight, insight_id)
    if row is None:
        raise NotFound(
            f"insight {insight_id} not found.",
            hint="List stored insights with: qml insight list SLUG",
        )
    tenant = session.get(Tenant, row.tenant_id)
    if row.insight_type == RUN_TYPE:
        return run_document(session, row, tenant.slug)
    return {
        "id": row.id,
        "run_id": row.options.get("run_id"),
        "tenant": tenant.slug,
        "metric": row.metric,
        "selected": bool(row.options.get("selected")),
        "created_at": row.created_at.isoformat(),
        **row.result,
    }
