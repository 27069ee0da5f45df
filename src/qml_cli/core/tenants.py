"""Tenants: creation with an opening credit account, lookup, listing, disabling."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qml_cli.core import clock
from qml_cli.core.models import SubscriptionPlan, Tenant
from qml_cli.errors import Conflict, InvalidInput, NotFound

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug or "") or "--" in slug:
        raise InvalidInput(
            f"invalid tenant slug {slug!r}.",
            hint="Use 1-63 lowercase letters, digits and single hyphens, starting and "
            "ending with a letter or digit (e.g. acme-retail).",
        )
    return slug


def get_plan(session: Session, name: str) -> SubscriptionPlan:
    plan = session.scalar(select(SubscriptionPlan).where(SubscriptionPlan.name == name))
    if plan is None or not plan.is_active:
        names = session.scalars(
            select(SubscriptionPlan.name)
            .where(SubscriptionPlan.is_active.is_(True))
            .order_by(SubscriptionPlan.id)
        ).all()
        hint = f"Use one of: {', '.join(names)}." if names else "Run: qml seed plans"
        raise InvalidInput(f"unknown plan {name!r}.", hint=hint)
    return plan


def get_tenant(session: Session, slug: str) -> Tenant:
    """Return the tenant with `slug`; raise `NotFound` (exit 2) otherwise."""
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(
            f"tenant {slug!r} not found.", hint="List tenants with: qml tenants list"
        )
    return tenant


def create_tenant(
    session: Session,
    slug: str,
    *,
    name: str | None,
    plan_name: str,
    timezone: str,
    is_test: bool,
    now=None,
) -> Tenant:
    """Create a tenant and open its credit account with the plan's allowance."""
    from qml_cli.core.ledger import open_account

    validate_slug(slug)
    clock.zone(timezone)
    if name is not None and (
        not name.strip() or len(name) > 200 or not name.isprintable()
    ):
        raise InvalidInput(
            f"invalid tenant name {name!r}.", hint="Use 1-200 printable characters."
        )
    plan = get_plan(session, plan_name)
    if session.scalar(select(Tenant).where(Tenant.slug == slug)) is not None:
        raise Conflict(
            f"tenant {slug!r} already exists.",
            hint="Pick another slug or inspect it with: qml tenants show " + slug,
        )
    tenant = Tenant(
        slug=slug,
        name=(name or slug).strip(),
        plan_id=plan.id,
        timezone=timezone,
        is_test=is_test,
        status="active",
    )
    session.add(tenant)
    session.flush()
    open_account(session, tenant, plan, now or clock.now())
    return tenant


def describe(session: Session, tenant: Tenant) -> dict[str, Any]:
    plan = session.get(SubscriptionPlan, tenant.plan_id)
    pending = (
        session.get(SubscriptionPlan, tenant.pending_plan_id)
        if tenant.pending_plan_id
        else None
    )
    return {
        "id": tenant.id,
        "slug": tenant.slug,
        "name": tenant.name,
        "plan": plan.name,
        "pending_plan": pending.name if pending else None,
        "timezone": tenant.timezone,
        "status": tenant.status,
        "test": tenant.is_test,
        "created_at": tenant.created_at,
    }


def list_tenants(session: Session) -> list[dict[str, Any]]:
    return [
        describe(session, tenant)
        for tenant in session.scalars(select(Tenant).order_by(Tenant.slug))
    ]


def set_status(session: Session, slug: str, status: str) -> Tenant:
    tenant = get_tenant(session, slug)
    tenant.status = status
    session.flush()
    return tenant
