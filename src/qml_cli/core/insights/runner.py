"""`run_insights`: one charged, cached insight run of a tenant's metric.

The order is fixed so that credits follow delivery. The run loads the metric,
prices it and returns a cached result free of charge when there is one. Otherwise
it reserves the whole price, which raises `InsufficientCredits` before any
analysis. It then analyses, and stores the result and commits the hold in one
transaction; any failure in between releases the hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
import uuid
from typing import Any

from sqlalchemy import select

from qml_cli import __version__
from qml_cli.core import clock, credits, metrics
from qml_cli.core.db import session_scope
from qml_cli.core.flags import effective_settings
from qml_cli.core.insights.analysis import TYPES, analyze, parse_types
from qml_cli.core.insights.finding import Finding
from qml_cli.core.insights.store import cache_run, cached_run, run_document, store_run
from qml_cli.core.logs import get_logger
from qml_cli.core.models import MetricPoint
from qml_cli.core.seeds import operation_costs
from qml_cli.core.tenants import get_tenant
from qml_cli.errors import InvalidInput

log = get_logger("insights")
OPERATION = "insight"
# Cost of an insight type missing from the stored costs (a database seeded by an
# older release).
UNSEEDED_TYPE_COST = 1
WINDOW_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$")
WINDOW_UNITS = {"h": 1 / 24, "d": 1.0, "w": 7.0}
MAX_SELECTION = 12
# Types whose findings depend on the tenant's other metrics.
NEEDS_OTHERS = ("correlation", "recommendation")


def parse_window(text: str) -> float:
    """Parse a window such as `90d`, `12w` or `48h` into days; raise `InvalidInput`."""
    match = WINDOW_PATTERN.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise InvalidInput(
            f"invalid window {text!r}.",
            hint="Use a positive number with h, d or w, e.g. 90d.",
        )
    return float(match.group(1)) * WINDOW_UNITS[match.group(2)]


def type_costs(session, types: tuple[str, ...]) -> dict[str, int]:
    """Return each requested type's cost as stored by `seed ml-config`."""
    stored = operation_costs(session)
    return {kind: int(stored.get(kind, UNSEEDED_TYPE_COST)) for kind in types}


def fingerprint(series: dict[str, tuple[list, list]], options: dict[str, Any]) -> str:
    """Return the SHA-256 of the options, the qml version and every input point."""
    digest = hashlib.sha256()
    digest.update(json.dumps([__version__, options], sort_keys=True).encode())
    for name in sorted(series):
        digest.update(f"#{name};".encode())
        for moment, value in zip(*series[name], strict=True):
            digest.update(f"{moment.isoformat()}={value!r};".encode())
    return digest.hexdigest()


def _trim(
    times: list[dt.datetime], values: list[float], start: dt.datetime, end: dt.datetime
) -> tuple[list, list]:
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if start < t <= end]
    return [t for t, _ in pairs], [v for _, v in pairs]


def load_inputs(
    session, tenant, metric: str, window_days: float, with_others: bool
) -> dict[str, tuple[list, list]]:
    """Load the metric's last `window_days` days (counted back from its newest
    point) and, when asked, every other metric of the tenant over the same span."""
    times, values = metrics.load_series(session, tenant, metric)
    end = times[-1]
    start = end - dt.timedelta(days=window_days)
    inputs = {metric: _trim(times, values, start, end)}
    if with_others:
        names = session.scalars(
            select(MetricPoint.metric)
            .where(MetricPoint.tenant_id == tenant.id, MetricPoint.metric != metric)
            .distinct()
        ).all()
        for name in sorted(names):
            other = metrics.load_series(session, tenant, name, since=start)
            trimmed = _trim(*other, start, end)
            if trimmed[0]:
                inputs[name] = trimmed
    return inputs


def _summary(findings: list[Finding], selection) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for finding in findings:
        if finding.detected and not finding.low_confidence:
            counts[finding.type] = counts.get(finding.type, 0) + 1
    return {
        "summary": {
            "confident": counts,
            "low_confidence": sum(f.low_confidence for f in findings),
            "absent": [f.key for f in findings if not f.detected],
        },
        "selection": selection.to_dict(),
    }


def _analyse(
    inputs: dict,
    metric: str,
    options: dict[str, Any],
    min_confidence: float,
    use_quantum: bool,
    iterations: int,
):
    from qml_cli.core.insights.outlook import engine_forecast
    from qml_cli.core.insights.selection import select as select_findings

    times, values = inputs[metric]
    others = {name: data for name, data in inputs.items() if name != metric}
    findings = analyze(
        times,
        values,
        types=options["types"],
        other_metrics=others,
        forecast_fn=engine_forecast,
        min_confidence=min_confidence,
    )
    selection = select_findings(
        findings,
        options["max"],
        use_quantum=use_quantum,
        seed=0,
        max_iterations=iterations,
    )
    return findings, selection


def run_insights(
    slug: str,
    metric: str,
    *,
    types: str | None = None,
    window: str = "90d",
    max_n: int = 5,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Run the insight analyses of one metric and return the stored run document.

    Raises `NotFound` for an unknown tenant or metric, `InvalidInput` for bad
    options or data and `InsufficientCredits` (before any analysis) when the
    tenant cannot pay the run. A cached result within ML_CACHE_TTL costs nothing.
    """
    now = now or clock.now()
    chosen = parse_types(types)
    window_days = parse_window(window)
    if not 1 <= max_n <= MAX_SELECTION:
        raise InvalidInput(
            f"invalid --max {max_n}.",
            hint=f"Choose between 1 and {MAX_SELECTION} insights.",
        )
    metrics.validate_metric_name(metric)

    with session_scope() as session:
        settings = effective_settings(session)
        tenant = get_tenant(session, slug)
        use_quantum = bool(
            settings["ML_QUANTUM_OPTIMIZATION"]
            and settings["QUANTUM_ALGORITHMS_ENABLED"]
        )
        options = {
            "types": list(chosen),
            "window_days": window_days,
            "max": max_n,
            "use_quantum": use_quantum,
        }
        inputs = load_inputs(
            session,
            tenant,
            metric,
            window_days,
            any(kind in chosen for kind in NEEDS_OTHERS),
        )
        digest = fingerprint(inputs, options)
        costs = type_costs(session, chosen)
        from qml_cli.core.cache import get_redis

        client = get_redis()
        ttl = int(settings["ML_CACHE_TTL"])
        hit = cached_run(session, tenant, metric, digest, ttl, now, client)
    if hit is not None:
        log.info(
            "insight cache hit",
            extra={
                "operation": OPERATION,
                "tenant_id": tenant.id,
                "credits_used": 0,
                "success": True,
            },
        )
        return {**hit, "cached": True, "credits_charged": 0}

    key = f"{OPERATION}:{tenant.slug}:{metric}:{uuid.uuid4().hex}"
    # NOTE: ML_TIMEOUT bounds the credit hold, not the analysis: a run that outlives
    # its hold fails at commit (nothing stored, nothing charged) instead of stopping.
    timeout_s = settings["ML_TIMEOUT"] / 1000 * 2 + 60
    with session_scope() as session:
        tenant = get_tenant(session, slug)
        hold = credits.reserve(
            session,
            tenant,
            sum(costs.values()),
            operation=OPERATION,
            key=key,
            timeout_s=timeout_s,
            now=now,
            context={"metric": metric, "types": list(chosen)},
        )
    return _work_and_store(
        slug, metric, inputs, options, digest, costs, hold, key, settings, client, now
    )


def _work_and_store(
    slug, metric, inputs, options, digest, costs, hold, key, settings, client, now
) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        findings, selection = _analyse(
            inputs,
            metric,
            options,
            float(settings["SQD_CONFIDENCE"]),
            options["use_quantum"],
            int(settings["QAOA_ITERATIONS"]),
        )
        elapsed = (time.perf_counter() - started) * 1000
        with session_scope() as session:
            tenant = get_tenant(session, slug)
            run = store_run(
                session,
                tenant,
                metric,
                fingerprint=digest,
                options={**options, "idempotency_key": key, "costs": costs},
                findings=findings,
                selected=selection.chosen,
                summary=_summary(findings, selection),
                credits_charged=hold.charged,
                processing_time_ms=elapsed,
                now=now,
            )
            credits.commit_hold(session, hold.hold_id, processing_time_ms=elapsed)
            document = run_document(session, run, tenant.slug)
            tenant_id = tenant.id
    except BaseException as exc:
        _release(slug, hold.hold_id, exc)
        raise
    cache_run(document, tenant_id, int(settings["ML_CACHE_TTL"]), client)
    log.info(
        "insight run",
        extra={
            "operation": OPERATION,
            "tenant_id": tenant_id,
            "credits_used": hold.charged,
            "success": True,
            "processing_time": elapsed,
        },
    )
    return document


def _release(slug: str, hold_id: int, error: BaseException) -> None:
    """Give the hold back after a failed run; log the failure with its ids. A hold
    that cannot be released here is released by its timeout."""
    try:
        with session_scope() as session:
            credits.release_hold(
                session, hold_id, reason=f"insight run failed: {error}"
            )
    except Exception as release_error:
        log.error(
            f"insight hold release failed for tenant {slug}",
            extra={
                "operation": OPERATION,
                "success": False,
                "error": f"hold {hold_id}: {release_error!r}",
            },
        )
    log.error(
        f"insight run failed for tenant {slug}",
        extra={
            "operation": OPERATION,
            "success": False,
            "error": repr(error),
        },
    )


__all__ = ["OPERATION", "TYPES", "parse_window", "run_insights", "type_costs"]
