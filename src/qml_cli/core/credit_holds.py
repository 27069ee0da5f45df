"""Commit and release of credit holds taken by `credits.reserve`.

A hold's credits leave the buckets at reserve time. Committing keeps them spent and
writes a zero-credit `commit` row with the processing time. Releasing returns them
to the buckets they came from, as far as those are still live.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from qml_cli.core import clock, ledger, ledger_settle
from qml_cli.core.models import MlCreditHold, MlCredits, Tenant
from qml_cli.errors import Conflict, NotFound


def _locked_hold(
    session: Session, hold_id: int, now: dt.datetime
) -> tuple[Tenant, MlCredits, MlCreditHold]:
    hold = session.get(MlCreditHold, hold_id)
    if hold is None:
        raise NotFound(f"credit hold {hold_id} not found.")
    tenant = session.get(Tenant, hold.tenant_id)
    account = ledger_settle.prepare(session, tenant, now).account
    session.refresh(hold)
    return tenant, account, hold


def commit_hold(
    session: Session,
    hold_id: int,
    now: dt.datetime | None = None,
    *,
    processing_time_ms: float | None = None,
) -> MlCreditHold:
    """Keep a pending hold's credits as spent; a no-op for a committed hold.

    Raises `Conflict` for a released hold or one whose timeout has passed, so no
    work is charged late (the timeout releases it)."""
    now = now or clock.now()
    tenant, account, hold = _locked_hold(session, hold_id, now)
    if hold.status == "committed":
        return hold
    if hold.status == "expired" or hold.expires_at <= now:
        raise Conflict(
            f"credit hold {hold_id} timed out at {hold.expires_at.isoformat()}; "
            "its credits go back to the tenant.",
            hint="Raise ML_TIMEOUT if the work needs longer.",
        )
    if hold.status != "pending":
        raise Conflict(
            f"credit hold {hold_id} is {hold.status}; it cannot be committed.",
            hint="Reserve the credits again before retrying the work.",
        )
    hold.status, hold.resolved_at = "committed", now
    account.held -= hold.amount
    ledger.append_entry(
        session,
        tenant,
        account,
        kind="commit",
        operation=hold.operation,
        buckets={},
        now=now,
        idempotency_key=f"commit:{hold.idempotency_key}",
        processing_time_ms=processing_time_ms,
        context={"hold_id": hold.id, "held": hold.amount},
    )
    return hold


def release_hold(
    session: Session,
    hold_id: int,
    *,
    reason: str,
    now: dt.datetime | None = None,
    processing_time_ms: float | None = None,
) -> MlCreditHold:
    """Give a pending hold's credits back; a no-op for a hold already released.
    Raises `Conflict` for a committed hold (refund its key instead)."""
    now = now or clock.now()
    tenant, account, hold = _locked_hold(session, hold_id, now)
    if hold.status in ("released", "expired"):
        return hold
    if hold.status != "pending":
        raise Conflict(
            f"credit hold {hold_id} is {hold.status}; it cannot be released.",
            hint=f"Refund it with: qml credits refund {tenant.slug} "
            f"--idempotency-key {hold.idempotency_key}",
        )
    ledger_settle.release(
        session,
        tenant,
        account,
        hold,
        reason=reason,
        status="released",
        now=now,
        processing_time_ms=processing_time_ms,
    )
    return hold
