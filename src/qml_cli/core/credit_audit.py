"""The ledger audit: recompute every cached balance from the ledger rows.

Checks per tenant:

- each row's buckets sum to its credits, and its `balance_after` continues the
  running sum of credits;
- the bucket sums equal the cached allowance, grant and per-grant balances, and
  no balance is negative;
- the allowance left matches the period's allowance, rollover and use;
- `held` equals the pending holds, and every hold has its reservation row plus
  the release or commit row that fits its status.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qml_cli.core import ledger
from qml_cli.core.models import (
    MlCreditGrant,
    MlCreditHold,
    MlCredits,
    MlUsageHistory,
    Tenant,
)


class _Findings:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.items: list[dict[str, Any]] = []

    def differ(self, check: str, expected: Any, actual: Any) -> None:
        """Record a mismatch when the ledger's value differs from the cached one."""
        if expected != actual:
            self.items.append(
                {
                    "tenant": self.tenant.slug,
                    "check": check,
                    "ledger": expected,
                    "cached": actual,
                }
            )


def audit(session: Session, tenant: Tenant | None = None) -> dict[str, Any]:
    """Recompute the balances of `tenant` (or of every tenant) and list each
    mismatch; `ok` is False when there is one."""
    tenants = (
        [tenant]
        if tenant
        else session.scalars(select(Tenant).order_by(Tenant.id)).all()
    )
    mismatches: list[dict[str, Any]] = []
    for item in tenants:
        mismatches += _audit_tenant(session, item)
    count = select(func.count()).select_from(MlUsageHistory)
    if tenant:
        count = count.where(MlUsageHistory.tenant_id == tenant.id)
    return {
        "ok": not mismatches,
        "tenants": len(tenants),
        "ledger_rows": session.scalar(count),
        "mismatches": mismatches,
    }


def _replay_rows(
    session: Session, tenant: Tenant, findings: _Findings
) -> tuple[dict[str, int], set[str]]:
    """Sum the buckets of the tenant's rows in order; return the sums and the keys."""
    sums: dict[str, int] = defaultdict(int)
    keys: set[str] = set()
    running = 0
    rows = session.execute(
        select(
            MlUsageHistory.id,
            MlUsageHistory.credits,
            MlUsageHistory.balance_after,
            MlUsageHistory.buckets,
            MlUsageHistory.idempotency_key,
        )
        .where(MlUsageHistory.tenant_id == tenant.id)
        .order_by(MlUsageHistory.id)
    )
    for row_id, credits, balance_after, buckets, key in rows:
        findings.differ(f"row {row_id} buckets", credits, sum(buckets.values()))
        for name, value in buckets.items():
            sums[name] += value
        running += credits
        if balance_after != running:
            findings.differ(f"row {row_id} balance_after", running, balance_after)
            running = balance_after
        if key:
            keys.add(key)
    return sums, keys


def _audit_tenant(session: Session, tenant: Tenant) -> list[dict[str, Any]]:
    findings = _Findings(tenant)
    account = session.scalar(select(MlCredits).where(MlCredits.tenant_id == tenant.id))
    if account is None:
        findings.differ("account", "a row", None)
        return findings.items
    sums, keys = _replay_rows(session, tenant, findings)

    findings.differ(
        "allowance_remaining",
        sums.get(ledger.ALLOWANCE, 0),
        account.allowance_remaining,
    )
    findings.differ(
        "allowance_remaining from the period",
        ledger.allowance_target(account),
        account.allowance_remaining,
    )
    findings.differ(
        "grant_remaining",
        sum(value for name, value in sums.items() if name.startswith("grant:")),
        account.grant_remaining,
    )
    for name, value in (
        ("allowance_remaining", account.allowance_remaining),
        ("grant_remaining", account.grant_remaining),
        ("held", account.held),
        ("used_this_period", account.used_this_period),
    ):
        if value < 0:
            findings.differ(f"{name} non-negative", 0, value)
    _audit_grants(session, tenant, sums, findings)
    _audit_holds(session, tenant, account, keys, findings)
    return findings.items


def _audit_grants(
    session: Session, tenant: Tenant, sums: dict[str, int], findings: _Findings
) -> None:
    grants = session.scalars(
        select(MlCreditGrant).where(MlCreditGrant.tenant_id == tenant.id)
    ).all()
    for grant in grants:
        name = f"grant:{grant.id}"
        findings.differ(
            f"grant {grant.id} remaining", sums.get(name, 0), grant.remaining
        )
        if grant.remaining < 0:
            findings.differ(f"grant {grant.id} non-negative", 0, grant.remaining)
        if grant.expired and grant.remaining:
            findings.differ(
                f"grant {grant.id} expired with credits", 0, grant.remaining
            )
        if grant.activated_at is None and name in sums:
            findings.differ(
                f"grant {grant.id} scheduled without ledger rows", 0, sums[name]
            )


def _audit_holds(
    session: Session,
    tenant: Tenant,
    account: MlCredits,
    keys: set[str],
    findings: _Findings,
) -> None:
    holds = session.scalars(
        select(MlCreditHold).where(MlCreditHold.tenant_id == tenant.id)
    ).all()
    findings.differ(
        "held", sum(h.amount for h in holds if h.status == "pending"), account.held
    )
    for hold in holds:
        key = hold.idempotency_key
        findings.differ(f"hold {hold.id} reservation row", True, key in keys)
        released = f"release:{key}" in keys
        committed = f"commit:{key}" in keys
        findings.differ(
            f"hold {hold.id} ({hold.status}) release row",
            hold.status in ("released", "expired"),
            released,
        )
        findings.differ(
            f"hold {hold.id} ({hold.status}) commit row",
            hold.status == "committed",
            committed,
        )
