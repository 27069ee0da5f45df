"""Canonical plans, operation costs and removal of test data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from qml_cli.core.models import (
    MlConfig,
    SubscriptionPlan,
    Tenant,
    utcnow,
)
from qml_cli.errors import InvalidInput

CANONICAL_PLANS: tuple[dict[str, Any], ...] = (
    {
        "name": "standard",
        "display_name": "Standard",
        "monthly_ml_credits": 30,
        "auto_predictions_per_day": 3,
        "scheduled_workflows": 5,
        "price_cents": 0,
        "currency": "BRL",
        "features": {"quantum_algorithms": False},
    },
    {
        "name": "quantum_plus",
        "display_name": "Quantum+",
        "monthly_ml_credits": 300,
        "auto_predictions_per_day": 6,
        "scheduled_workflows": 15,
        "price_cents": 9900,
        "currency": "BRL",
        "features": {"quantum_algorithms": True},
    },
    {
        "name": "quantum_premium",
        "display_name": "Quantum Premium",
        "monthly_ml_credits": 1500,
        "auto_predictions_per_day": 12,
        "scheduled_workflows": 30,
        "price_cents": 19900,
        "currency": "BRL",
        "features": {"quantum_algorithms": True},
    },
)

# Credit cost of each operation; `qml seed ml-config` stores these in `ml_config`.
DEFAULT_OPERATION_COSTS = {
    "prediction": 1,
    "optimization": 1,
    "anomaly": 1,
    "segmentation": 2,
    "recommendation": 1,
    # Insight types without a cost of their own in the service's price list.
    "trend": 1,
    "seasonality": 1,
    "changepoint": 1,
    "correlation": 1,
}
OPERATION_COSTS_KEY = "operation_costs"
MAX_OPERATION_COST = 10_000

PLAN_FIELDS = {
    "name": str,
    "display_name": str,
    "monthly_ml_credits": int,
    "auto_predictions_per_day": int,
    "scheduled_workflows": int,
    "price_cents": int,
    "currency": str,
    "features": dict,
    "rollover_percent": int,
    "is_active": bool,
}
REQUIRED_PLAN_FIELDS = (
    "name",
    "display_name",
    "monthly_ml_credits",
    "auto_predictions_per_day",
    "scheduled_workflows",
)


def load_plans_file(path: Path) -> list[dict[str, Any]]:
    """Read and validate a JSON list of plans; raise `InvalidInput` naming each problem."""
    if path.is_dir():
        raise InvalidInput(
            f"plans file {path} is a directory.", hint="Pass a JSON file."
        )
    try:
        plans = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise InvalidInput(
            f"cannot read plans file {path}: permission denied."
        ) from None
    except FileNotFoundError:
        raise InvalidInput(f"plans file not found: {path}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"plans file {path} is not valid JSON: {exc}.") from None
    if not isinstance(plans, list) or not plans:
        raise InvalidInput(
            f"plans file {path} must contain a non-empty JSON list of plans."
        )
    problems = []
    for number, plan in enumerate(plans, start=1):
        problems += [f"plan {number}: {problem}" for problem in validate_plan(plan)]
    if problems:
        raise InvalidInput(
            f"invalid plans in {path}:\n  " + "\n  ".join(problems),
            hint="\nFix the file and run the command again.",
        )
    return plans


def validate_plan(plan: Any) -> list[str]:
    if not isinstance(plan, dict):
        return ["must be a JSON object"]
    problems = [
        f"missing field {name!r}" for name in REQUIRED_PLAN_FIELDS if name not in plan
    ]
    for name, value in plan.items():
        expected = PLAN_FIELDS.get(name)
        if expected is None:
            problems.append(f"unknown field {name!r}")
        elif not isinstance(value, expected) or (
            expected is int and isinstance(value, bool)
        ):
            problems.append(
                f"field {name!r} must be {expected.__name__}, got {value!r}"
            )
        elif expected is int and value < 0:
            problems.append(f"field {name!r} must not be negative, got {value}")
    name = plan.get("name")
    if isinstance(name, str) and not name.replace("_", "").isalnum():
        problems.append(
            f"name {name!r} may contain only letters, digits and underscores"
        )
    rollover = plan.get("rollover_percent", 0)
    if isinstance(rollover, int) and not 0 <= rollover <= 100:
        problems.append(f"rollover_percent must be 0..100, got {rollover}")
    return problems


def upsert_plans(session: Session, plans=CANONICAL_PLANS) -> dict[str, str]:
    """Insert or update plans by name; return {name: created|updated|unchanged}."""
    outcome: dict[str, str] = {}
    for plan in plans:
        row = session.scalar(
            select(SubscriptionPlan).where(SubscriptionPlan.name == plan["name"])
        )
        if row is None:
            session.add(SubscriptionPlan(**plan))
            outcome[plan["name"]] = "created"
            continue
        changed = False
        for name, value in plan.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
        if changed:
            row.updated_at = utcnow()
        outcome[plan["name"]] = "updated" if changed else "unchanged"
    session.flush()
    return outcome


def seed_ml_config(
    session: Session, changes: dict[str, int] | None = None
) -> dict[str, int]:
    """Store the operation costs: defaults for operations not stored yet, costs an
    operator already changed are kept, and `changes` overrides both."""
    changes = changes or {}
    row = session.get(MlConfig, OPERATION_COSTS_KEY)
    known = {**DEFAULT_OPERATION_COSTS, **(dict(row.value) if row else {})}
    for operation, cost in changes.items():
        if operation not in known:
            raise InvalidInput(
                f"unknown operation {operation!r}.",
                hint=f"Use one of: {', '.join(sorted(known))}.",
            )
        if (
            not isinstance(cost, int)
            or isinstance(cost, bool)
            or not 0 <= cost <= MAX_OPERATION_COST
        ):
            raise InvalidInput(
                f"invalid cost {cost!r} for operation {operation!r}.",
                hint=f"Costs are whole numbers of credits from 0 to {MAX_OPERATION_COST}.",
            )
    stored = dict(row.value) if row else {}
    merged = {**DEFAULT_OPERATION_COSTS, **stored, **changes}
    if row is None:
        session.add(MlConfig(key=OPERATION_COSTS_KEY, value=merged))
    else:
        row.value = merged
        row.updated_at = utcnow()
    session.flush()
    return merged


def operation_costs(session: Session) -> dict[str, int]:
    """Return the stored operation costs, or the defaults before `seed ml-config`."""
    row = session.get(MlConfig, OPERATION_COSTS_KEY)
    return {**DEFAULT_OPERATION_COSTS, **(row.value if row else {})}


def operation_cost(session: Session, operation: str) -> int:
    costs = operation_costs(session)
    if operation not in costs:
        raise InvalidInput(
            f"unknown operation {operation!r}.",
            hint=f"Use one of: {', '.join(sorted(costs))}.",
        )
    return costs[operation]


def remove_test_data(session: Session, *, dry_run: bool) -> list[dict[str, Any]]:
    """Delete tenants created with --test and all their rows (by cascade)."""
    from qml_cli.core import models

    tenants = session.scalars(select(Tenant).where(Tenant.is_test.is_(True))).all()
    report = []
    child_tables = (
        models.MlUsageHistory,
        models.MlCreditGrant,
        models.MlCreditHold,
        models.MlCredits,
        models.CreditAlert,
        models.MetricPoint,
        models.PredictionRun,
        models.AutoPrediction,
        models.Insight,
    )
    for tenant in tenants:
        counts = {}
        for table in child_tables:
            counts[table.__tablename__] = session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.tenant_id == tenant.id)
            )
        report.append({"tenant": tenant.slug, "rows": counts})
        if not dry_run:
            # Explicit deletes so that SQLite without cascading FKs also cleans up.
            for table in child_tables:
                session.execute(delete(table).where(table.tenant_id == tenant.id))
            session.delete(tenant)
    session.flush()
    return report
