"""The scheduled prediction job: claim due predictions, run them, store the result
and its credit charge in one transaction.

A run goes through three transactions. The claim takes a lease on the row, under
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers never claim the same
prediction. The second takes the credit hold. The finish stores the result, commits
the hold and schedules the next run together. A failed run releases the hold and keeps
the last good result; a crash leaves a lease and a hold that both time out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from qml_cli.core import clock, credits, ledger, metrics
from qml_cli.core.db import session_scope
from qml_cli.core.flags import effective_settings
from qml_cli.core.logs import get_logger
from qml_cli.core.models import (
    AutoPrediction,
    MlCreditHold,
    PredictionRun,
    SubscriptionPlan,
    Tenant,
)
from qml_cli.core.predictions import next_fire
from qml_cli.core.seeds import operation_cost
from qml_cli.errors import Conflict, InsufficientCredits, LockHeld, NotFound, QmlError

log = get_logger("predict")
OPERATION = "prediction"


@dataclass
class RunOutcome:
    prediction_id: int
    tenant: str
    name: str
    status: str  # success, failed, skipped
    reason: str | None = None
    model: str | None = None
    credits: int = 0
    error: str | None = None
    processing_time_ms: float | None = None
    run_id: int | None = None


class RunTimeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise RunTimeout


def _with_timeout(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run `fn` with a wall-clock limit (SIGALRM in the main thread, else no limit)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_finite(result: dict[str, Any]) -> None:
    """Raise `ValueError` when a forecast has missing or non-finite numbers, so
    such a run fails and is not charged."""
    series = [result.get("point") or []]
    for bounds in (result.get("intervals") or {}).values():
        series += [bounds.get("lower") or [], bounds.get("upper") or []]
    for values in series:
        for value in values:
            if value is None or not math.isfinite(value):
                raise ValueError(
                    "the forecast has non-finite values; the metric's magnitude is "
                    "beyond what the models can fit"
                )


def fingerprint(times, values, prediction: AutoPrediction) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [
                prediction.prediction_type,
                prediction.horizon,
                prediction.levels,
                prediction.options,
            ],
            sort_keys=True,
        ).encode()
    )
    for moment, value in zip(times, values, strict=True):
        digest.update(f"{moment.isoformat()}={value!r};".encode())
    return digest.hexdigest()


def claim(
    *,
    now: dt.datetime,
    limit: int,
    worker: str,
    lease_s: float,
    only_id: int | None = None,
) -> list[tuple[int, str]]:
    """Lease up to `limit` due predictions to `worker`; return (id, claim token)."""
    with session_scope() as session:
        query = select(AutoPrediction).where(
            AutoPrediction.is_active.is_(True),
            or_(
                AutoPrediction.claimed_until.is_(None),
                AutoPrediction.claimed_until < now,
            ),
        )
        if only_id is None:
            query = query.where(AutoPrediction.next_run_at <= now)
        else:
            query = query.where(AutoPrediction.id == only_id)
        query = query.order_by(AutoPrediction.next_run_at, AutoPrediction.id).limit(
            limit
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = []
        for prediction in session.scalars(query):
            token = f"{worker}:{uuid.uuid4().hex[:12]}"
            prediction.claimed_by = token
            prediction.claimed_until = now + dt.timedelta(seconds=lease_s)
            claimed.append((prediction.id, token))
        return claimed


def _daily_runs(session, tenant: Tenant, now: dt.datetime) -> int:
    tz = clock.zone(tenant.timezone)
    local = now.astimezone(tz)
    day_start = dt.datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(
        dt.UTC
    )
    in_flight = session.scalar(
        select(func.count())
        .select_from(MlCreditHold)
        .where(
            MlCreditHold.tenant_id == tenant.id,
            MlCreditHold.operation == OPERATION,
            MlCreditHold.status == "pending",
        )
    )
    # NOTE: at an operation cost of 0 no hold marks a run in flight, so parallel
    # workers can exceed the daily limit by up to their number minus one.
    return in_flight + session.scalar(
        select(func.count())
        .select_from(PredictionRun)
        .where(
            PredictionRun.tenant_id == tenant.id,
            PredictionRun.status == "success",
            PredictionRun.started_at >= day_start,
        )
    )


def _finish(
    prediction_id: int,
    token: str,
    *,
    now: dt.datetime,
    scheduled: bool,
    status: str,
    reason: str | None = None,
    result: dict | None = None,
    error: str | None = None,
    hold_id: int | None = None,
    charge: int = 0,
    key: str | None = None,
    input_fingerprint: str | None = None,
    started: dt.datetime,
    elapsed_ms: float | None = None,
) -> int:
    """Store the run, settle the hold and schedule the next run, in one transaction."""
    with session_scope() as session:
        query = select(AutoPrediction).where(AutoPrediction.id == prediction_id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        prediction = session.scalars(
            query.execution_options(populate_existing=True)
        ).one()
        if prediction.claimed_by != token:
            raise Conflict(f"prediction {prediction_id} was claimed by another worker.")
        if hold_id is not None:
            if status == "success":
                credits.commit_hold(session, hold_id, now=clock.now())
            else:
                credits.release_hold(session, hold_id, reason=error or reason or status)
        run = PredictionRun(
            prediction_id=prediction.id,
            tenant_id=prediction.tenant_id,
            status=status,
            reason=reason,
            model=(result or {}).get("model"),
            result=result,
            error=error,
            input_fingerprint=input_fingerprint,
            credits_charged=charge if status == "success" else 0,
            idempotency_key=key,
            started_at=started,
            finished_at=clock.now(),
            processing_time_ms=elapsed_ms,
        )
        session.add(run)
        if status != "skipped":
            prediction.run_count += 1
            prediction.last_run_at = started
        if status == "success":
            prediction.success_count += 1
            prediction.last_result = result
            prediction.last_error = None
        elif status == "failed":
            prediction.last_error = error
        if scheduled:
            # One catch-up run, then the next slot after now, not one run per missed slot.
            prediction.next_run_at = next_fire(
                prediction.schedule,
                prediction.timezone,
                max(now, prediction.next_run_at),
            )
        prediction.claimed_by = prediction.claimed_until = None
        session.flush()
        return run.id


def execute(
    prediction_id: int,
    token: str,
    *,
    now: dt.datetime | None = None,
    scheduled: bool = True,
) -> RunOutcome:
    """Run one claimed prediction to completion; a failure of the work itself is
    recorded on the run, not raised (database errors still propagate)."""
    now = now or clock.now()
    started = clock.now()
    key = f"{OPERATION}:{prediction_id}:{token}"
    hold_id, charged, skip = None, 0, None
    try:
        with session_scope() as session:
            prediction = session.get(AutoPrediction, prediction_id)
            tenant = session.get(Tenant, prediction.tenant_id)
            plan = session.get(SubscriptionPlan, tenant.plan_id)
            outcome = RunOutcome(prediction_id, tenant.slug, prediction.name, "skipped")
            settings = effective_settings(session)
            cost = operation_cost(session, OPERATION)
            # The account lock serialises this check with other workers' reservations.
            ledger.lock_account(session, tenant)
            if tenant.status != "active":
                skip = "tenant_disabled"
            elif (
                scheduled
                and _daily_runs(session, tenant, now) >= plan.auto_predictions_per_day
            ):
                skip = "daily_limit"
            elif cost:
                held = credits.reserve(
                    session,
                    tenant,
                    cost,
                    operation=OPERATION,
                    key=key,
                    timeout_s=settings["ML_TIMEOUT"] / 1000 * 2 + 60,
                    context={"prediction_id": prediction_id},
                )
                hold_id, charged = held.hold_id, held.charged
    except InsufficientCredits:
        outcome.reason = "insufficient_credits"
        outcome.run_id = _finish(
            prediction_id,
            token,
            now=now,
            scheduled=scheduled,
            status="skipped",
            reason="insufficient_credits",
            started=started,
        )
        return outcome

    if skip:
        outcome.reason = skip
        outcome.run_id = _finish(
            prediction_id,
            token,
            now=now,
            scheduled=scheduled,
            status="skipped",
            reason=skip,
            started=started,
        )
        return outcome

    return _compute_and_store(
        prediction,
        tenant,
        token,
        outcome,
        now=now,
        scheduled=scheduled,
        hold_id=hold_id,
        charged=charged,
        key=key,
        started=started,
        timeout_ms=settings["ML_TIMEOUT"],
        use_quantum=settings["ML_QUANTUM_OPTIMIZATION"]
        and settings["QUANTUM_ALGORITHMS_ENABLED"],
    )


def _compute_and_store(
    prediction,
    tenant,
    token,
    outcome: RunOutcome,
    *,
    now,
    scheduled,
    hold_id,
    charged,
    key,
    started,
    timeout_ms,
    use_quantum,
) -> RunOutcome:
    import numpy as np

    from qml_cli.core.forecasting import analyze_metric

    clock_start = time.perf_counter()
    digest = None
    try:
        with session_scope() as session:
            times, values = metrics.load_series(session, tenant, prediction.metric)
        digest = fingerprint(times, values, prediction)
        # Overflow inside a model shows up as non-finite values, which check_finite
        # rejects, so the warnings would only add noise to cron mail.
        with np.errstate(all="ignore"):
            result = _with_timeout(
                timeout_ms / 1000,
                lambda: analyze_metric(
                    times,
                    values,
                    metric_type=prediction.prediction_type,
                    horizon=prediction.horizon,
                    levels=prediction.levels["levels"],
                    missing=prediction.options.get("missing"),
                    use_quantum=use_quantum,
                ),
            )
        check_finite(result)
        status, error = "success", None
    except RunTimeout:
        result, status, error = (
            None,
            "failed",
            f"timed out after {timeout_ms} ms (ML_TIMEOUT)",
        )
    except Exception as exc:  # a failure of the work is recorded on the run
        result, status, error = None, "failed", f"{type(exc).__name__}: {exc}"
    elapsed = (time.perf_counter() - clock_start) * 1000
    try:
        outcome.run_id = _finish(
            prediction.id,
            token,
            now=now,
            scheduled=scheduled,
            status=status,
            result=result,
            error=error,
            hold_id=hold_id,
            charge=charged,
            key=key,
            input_fingerprint=digest,
            started=started,
            elapsed_ms=elapsed,
        )
    except Conflict as exc:  # the hold timed out while the work ran
        status, error, result = "failed", str(exc), None
        outcome.run_id = _finish(
            prediction.id,
            token,
            now=now,
            scheduled=scheduled,
            status=status,
            error=error,
            hold_id=hold_id,
            key=key,
            started=started,
            elapsed_ms=elapsed,
        )
    outcome.status, outcome.error = status, error
    outcome.model = (result or {}).get("model")
    outcome.credits = charged if status == "success" else 0
    outcome.processing_time_ms = round(elapsed, 1)
    log.info(
        "prediction run",
        extra={
            "operation": OPERATION,
            "tenant_id": tenant.id,
            "credits_used": outcome.credits,
            "success": status == "success",
            "processing_time": elapsed,
            "error": error,
        },
    )
    return outcome


def worker_identity() -> str:
    """Return this worker's name: QML_WORKER_NAME, else the host name."""
    return os.environ.get("QML_WORKER_NAME") or socket.gethostname()


def worker_name() -> str:
    return f"{worker_identity()}:{os.getpid()}"


def _worker_init(env_file: str | None) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pathlib import Path

    from qml_cli.core import settings

    settings.configure(Path(env_file) if env_file else None)


def _worker_execute(prediction_id: int, token: str, now_iso: str) -> dict:
    now = dt.datetime.fromisoformat(now_iso)
    return asdict(execute_safely(prediction_id, token, now=now))


def count_due(now: dt.datetime) -> int:
    with session_scope() as session:
        return session.scalar(
            select(func.count())
            .select_from(AutoPrediction)
            .where(
                AutoPrediction.is_active.is_(True), AutoPrediction.next_run_at <= now
            )
        )


def run_due(
    *,
    now: dt.datetime | None = None,
    workers: int | None = None,
    progress: Callable[[RunOutcome], None] | None = None,
) -> dict[str, Any]:
    """Run every due prediction once, with `workers` processes (ML_MAX_CONCURRENT)."""
    now = now or clock.now()
    with session_scope() as session:
        settings = effective_settings(session)
    if not settings["AUTO_PREDICTIONS_ENABLED"]:
        return _summary([], enabled=False)
    # Process start-up costs about a second, so small batches run in this process.
    workers = min(workers or settings["ML_MAX_CONCURRENT"], count_due(now))
    lease_s = settings["ML_TIMEOUT"] / 1000 * 2 + 60
    name = worker_name()
    outcomes: list[RunOutcome] = []

    def record(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        if progress:
            progress(outcome)

    if workers <= 1:
        while batch := claim(now=now, limit=1, worker=name, lease_s=lease_s):
            for prediction_id, token in batch:
                record(execute_safely(prediction_id, token, now=now))
    else:
        _run_pool(workers, now, name, lease_s, record)
    summary = _summary(outcomes)
    summary["still_due"] = count_due(now)
    return summary


def execute_safely(prediction_id: int, token: str, *, now: dt.datetime) -> RunOutcome:
    """Run `execute`, turning an error that escapes it (a bad operation cost, a
    database error) into a failed run, so one prediction cannot stop the others."""
    try:
        return execute(prediction_id, token, now=now)
    except QmlError as exc:
        error = str(exc)
    except SQLAlchemyError as exc:
        error = f"{type(exc).__name__}: {exc}"
    log.error(
        "prediction run failed",
        extra={"operation": OPERATION, "success": False, "error": error},
    )
    started = clock.now()
    outcome = RunOutcome(prediction_id, "", "", "failed", error=error)
    try:
        outcome.run_id = _finish(
            prediction_id,
            token,
            now=now,
            scheduled=True,
            status="failed",
            error=error,
            started=started,
        )
    except (QmlError, SQLAlchemyError) as exc:  # the lease expires by itself
        log.error(
            "recording a failed prediction run failed",
            extra={"operation": OPERATION, "success": False, "error": str(exc)},
        )
    with session_scope(readonly=True) as session:
        prediction = session.get(AutoPrediction, prediction_id)
        outcome.name = prediction.name
        outcome.tenant = session.get(Tenant, prediction.tenant_id).slug
    return outcome


def _run_pool(
    workers: int, now: dt.datetime, name: str, lease_s: float, record
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from qml_cli.core.settings import get_settings

    env_file = get_settings().env_file
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(str(env_file) if env_file else None,),
    ) as pool:
        running = set()
        while True:
            free = workers * 2 - len(running)
            batch = (
                claim(now=now, limit=free, worker=name, lease_s=lease_s) if free else []
            )
            for prediction_id, token in batch:
                running.add(
                    pool.submit(_worker_execute, prediction_id, token, now.isoformat())
                )
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                record(RunOutcome(**future.result()))


def run_one(prediction_id: int, *, now: dt.datetime | None = None) -> RunOutcome:
    """Run one prediction now, due or not; its schedule is left as it is."""
    now = now or clock.now()
    with session_scope() as session:
        settings = effective_settings(session)
    lease_s = settings["ML_TIMEOUT"] / 1000 * 2 + 60
    claimed = claim(
        now=now, limit=1, worker=worker_name(), lease_s=lease_s, only_id=prediction_id
    )
    if not claimed:
        with session_scope() as session:
            prediction = session.get(AutoPrediction, prediction_id)
        if prediction is None:
            raise NotFound(f"prediction {prediction_id} not found.")
        if not prediction.is_active:
            raise Conflict(
                f"prediction {prediction_id} is disabled.",
                hint=f"Enable it with: qml predict enable {prediction_id}",
            )
        raise LockHeld(
            f"prediction {prediction_id} is being run by {prediction.claimed_by}.",
            hint="Wait for that run to finish.",
        )
    return execute(prediction_id, claimed[0][1], now=now, scheduled=False)


def _summary(outcomes: list[RunOutcome], *, enabled: bool = True) -> dict[str, Any]:
    skipped = Counter(o.reason for o in outcomes if o.status == "skipped")
    return {
        "enabled": enabled,
        "run": sum(o.status == "success" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "skipped": sum(skipped.values()),
        "skipped_reasons": dict(skipped),
        "credits_charged": sum(o.credits for o in outcomes),
        "predictions": [asdict(o) for o in outcomes],
    }
