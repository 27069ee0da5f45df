"""Auto-predictions: scheduled forecasts and analyses of a tenant's metric."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock
from qml_cli.core.models import AutoPrediction, MetricPoint, PredictionRun, Tenant
from qml_cli.core.tenants import get_tenant
from qml_cli.errors import Conflict, InvalidInput, NotFound

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DEFAULT_SCHEDULE = "0 9 * * *"
DEFAULT_LEVELS = (80.0, 95.0)
MAX_HORIZON = 730
# Cron expressions must fire within this many years (rejects e.g. "0 0 30 2 *").
CRON_SEARCH_YEARS = 5


def supported_types() -> tuple[str, ...]:
    from qml_cli.core.forecasting import SUPPORTED_TYPES

    return tuple(SUPPORTED_TYPES)


def next_fire(schedule: str, tz_name: str, after: dt.datetime) -> dt.datetime:
    """Return the first instant after `after` at which `schedule` fires in `tz_name`.

    Raises `InvalidInput` for an invalid expression or one that never fires."""
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    tz = clock.zone(tz_name)
    if not isinstance(schedule, str) or not schedule.strip() or len(schedule) > 100:
        raise InvalidInput(
            f"invalid cron schedule {schedule!r}.",
            hint='Use five fields, e.g. "0 9 * * *" for 09:00 daily.',
        )
    fields = schedule.split()
    if len(fields) != 5:
        raise InvalidInput(
            f"invalid cron schedule {schedule!r}: expected 5 fields "
            f"(minute hour day month weekday), got {len(fields)}.",
            hint='e.g. "0 9 * * *" for 09:00 daily.',
        )
    try:
        iterator = croniter(
            schedule, after.astimezone(tz), max_years_between_matches=CRON_SEARCH_YEARS
        )
        fire = iterator.get_next(dt.datetime)
        # When clocks go back, a fixed local time such as 02:30 occurs twice; like
        # cron, run it once by requiring a later wall-clock time. Schedules with a
        # wildcard hour keep running through the repeated hour.
        if "*" not in fields[1]:
            wall_after = after.astimezone(tz).replace(tzinfo=None)
            while fire.astimezone(tz).replace(tzinfo=None) <= wall_after:
                fire = iterator.get_next(dt.datetime)
    except CroniterBadDateError:
        raise InvalidInput(
            f"cron schedule {schedule!r} never fires.",
            hint="Check the day and month fields, e.g. February has no 30th.",
        ) from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise InvalidInput(
            f"invalid cron schedule {schedule!r}: {exc}.",
            hint='Use five fields, e.g. "0 9 * * *" for 09:00 daily.',
        ) from None
    return fire.astimezone(dt.UTC)


def validate_levels(levels: list[float] | tuple[float, ...] | None) -> list[float]:
    levels = list(levels or DEFAULT_LEVELS)
    for level in levels:
        if not 0 < level < 100:
            raise InvalidInput(
                f"invalid --level {level:g}.",
                hint="Use a coverage in percent between 0 and 100, e.g. 80.",
            )
    if len(set(levels)) != len(levels):
        raise InvalidInput(
            f"repeated --level in {levels}.", hint="Give each level once."
        )
    return sorted(levels)


def create(
    session: Session,
    tenant: Tenant,
    name: str,
    *,
    metric: str,
    prediction_type: str = "sales_forecast",
    horizon: int = 30,
    schedule: str = DEFAULT_SCHEDULE,
    timezone: str | None = None,
    levels: list[float] | None = None,
    missing: str | None = None,
    start: str = "next",
    now: dt.datetime | None = None,
) -> AutoPrediction:
    """Create an auto-prediction; every option is validated before anything is written."""
    now = now or clock.now()
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInput(
            f"invalid prediction name {name!r}.",
            hint="Use 1-100 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit.",
        )
    if prediction_type not in supported_types():
        raise InvalidInput(
            f"unsupported prediction type {prediction_type!r}.",
            hint=f"Use one of: {', '.join(supported_types())}.",
        )
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, int)
        or not 1 <= horizon <= MAX_HORIZON
    ):
        raise InvalidInput(
            f"invalid --horizon {horizon!r}.",
            hint=f"Use a whole number of periods from 1 to {MAX_HORIZON}.",
        )
    if missing is not None and missing not in ("zero", "interpolate", "skip"):
        raise InvalidInput(
            f"invalid --missing {missing!r}.", hint="Use zero, interpolate or skip."
        )
    if start not in ("next", "now"):
        raise InvalidInput(f"invalid --start {start!r}.", hint="Use next or now.")
    timezone = timezone or tenant.timezone
    next_run = next_fire(schedule, timezone, now)
    if start == "now":
        next_run = now
    level_list = validate_levels(levels)
    has_data = session.scalar(
        select(MetricPoint.id)
        .where(MetricPoint.tenant_id == tenant.id, MetricPoint.metric == metric)
        .limit(1)
    )
    if has_data is None:
        raise InvalidInput(
            f"tenant {tenant.slug!r} has no data for metric {metric!r}.",
            hint=f"Import it first: qml data import {tenant.slug} {metric} FILE",
        )
    if session.scalar(
        select(AutoPrediction).where(
            AutoPrediction.tenant_id == tenant.id, AutoPrediction.name == name
        )
    ):
        raise Conflict(
            f"prediction {tenant.slug}/{name} already exists.",
            hint="Pick another name or delete the old one.",
        )
    prediction = AutoPrediction(
        tenant_id=tenant.id,
        name=name,
        prediction_type=prediction_type,
        metric=metric,
        horizon=horizon,
        levels={"levels": level_list},
        options={"missing": missing} if missing else {},
        schedule=" ".join(schedule.split()),
        timezone=timezone,
        next_run_at=next_run,
        is_active=True,
        created_at=now,
    )
    session.add(prediction)
    session.flush()
    return prediction


def resolve(session: Session, reference: str) -> AutoPrediction:
    """Find a prediction by integer id or by SLUG/NAME."""
    reference = reference.strip()
    if reference.isdigit():
        if int(reference) > 2**31 - 1:
            raise NotFound(f"prediction {reference!r} not found.")
        prediction = session.get(AutoPrediction, int(reference))
    elif "/" in reference:
        slug, _, name = reference.partition("/")
        tenant = get_tenant(session, slug)
        prediction = session.scalar(
            select(AutoPrediction).where(
                AutoPrediction.tenant_id == tenant.id, AutoPrediction.name == name
            )
        )
    else:
        raise InvalidInput(
            f"invalid prediction reference {reference!r}.",
            hint="Use the id from `qml predict list` or SLUG/NAME.",
        )
    if prediction is None:
        raise NotFound(
            f"prediction {reference!r} not found.",
            hint="List predictions with: qml predict list",
        )
    return prediction


def describe(session: Session, prediction: AutoPrediction) -> dict[str, Any]:
    tenant = session.get(Tenant, prediction.tenant_id)
    return {
        "id": prediction.id,
        "tenant": tenant.slug,
        "name": prediction.name,
        "type": prediction.prediction_type,
        "metric": prediction.metric,
        "horizon": prediction.horizon,
        "levels": prediction.levels["levels"],
        "schedule": prediction.schedule,
        "timezone": prediction.timezone,
        "next_run_at": prediction.next_run_at,
        "last_run_at": prediction.last_run_at,
        "last_error": prediction.last_error,
        "runs": prediction.run_count,
        "successes": prediction.success_count,
        "active": prediction.is_active,
        "options": prediction.options,
    }


def list_predictions(session: Session, slug: str | None = None) -> list[dict[str, Any]]:
    query = select(AutoPrediction).order_by(AutoPrediction.id)
    if slug:
        query = query.where(AutoPrediction.tenant_id == get_tenant(session, slug).id)
    return [describe(session, prediction) for prediction in session.scalars(query)]


def latest_runs(
    session: Session, prediction: AutoPrediction, limit: int = 5
) -> list[dict]:
    runs = session.scalars(
        select(PredictionRun)
        .where(PredictionRun.prediction_id == prediction.id)
        .order_by(PredictionRun.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": run.id,
            "status": run.status,
            "reason": run.reason,
            "model": run.model,
            "started_at": run.started_at,
            "processing_time_ms": run.processing_time_ms,
            "credits_charged": run.credits_charged,
            "error": run.error,
        }
        for run in runs
    ]


def set_active(
    session: Session,
    prediction: AutoPrediction,
    active: bool,
    now: dt.datetime | None = None,
) -> None:
    """Enable or disable; enabling schedules the next run from now, not the past."""
    if active and not prediction.is_active:
        prediction.next_run_at = next_fire(
            prediction.schedule, prediction.timezone, now or clock.now()
        )
    prediction.is_active = active
    session.flush()
