"""The fast path of a consumption: allowance only, a few Core statements.

Most consumptions find an account with nothing to settle (the period runs, no
grants or holds) and enough allowance left. For those, `try_consume` locks the
account and reads the tenant's status and the stored credit flag in one statement.
A second statement inserts the ledger row unless its key is taken and then updates
the balance (SQLite needs two statements for that), and no ORM objects are built.
Whenever anything else could apply (a due reset, grants, holds, a disabled tenant,
a short balance or a taken key), it returns None before writing anything, and the
caller takes the general path under the same lock.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import Select, Update, bindparam, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from qml_cli.core import ledger
from qml_cli.core.models import (
    FeatureFlag,
    MlCredits,
    MlUsageHistory,
    Tenant,
    UtcDateTime,
)

CREDITS_FLAG = "ML_CREDITS_ENABLED"


@functools.cache
def _lock_statement(dialect: str, with_flag: bool) -> Select:
    flag = select(FeatureFlag.enabled).where(FeatureFlag.name == CREDITS_FLAG)
    columns = [
        MlCredits.id,
        MlCredits.allowance_remaining,
        MlCredits.grant_remaining,
        MlCredits.held,
        MlCredits.used_this_period,
        MlCredits.period_end,
        MlCredits.next_grant_at,
        Tenant.status,
    ]
    if with_flag:
        columns.append(flag.scalar_subquery())
    statement = (
        select(*columns)
        .join(Tenant, Tenant.id == MlCredits.tenant_id)
        .where(MlCredits.tenant_id == bindparam("tenant_id"))
    )
    if dialect == "postgresql":
        statement = statement.with_for_update(of=MlCredits)
    return statement


def _account_values() -> dict[str, Any]:
    return {
        "allowance_remaining": bindparam("new_remaining"),
        "used_this_period": bindparam("new_used"),
        "updated_at": bindparam("account_updated_at", type_=UtcDateTime()),
    }


@functools.cache
def _update_statement() -> Update:
    table = MlCredits.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("account_id"))
        .values(**_account_values())
    )


@functools.cache
def _write_statement_postgresql() -> Update:
    """Build once the PostgreSQL statement that inserts the ledger row unless its
    key is taken. Only when the row was inserted does it update the account, and
    it returns the new row's id (no row otherwise)."""
    from sqlalchemy.dialects.postgresql import insert

    history = MlUsageHistory.__table__
    entry = (
        insert(history)
        .values(
            {
                name: bindparam(f"row_{name}", type_=history.c[name].type)
                for name in ledger.ENTRY_COLUMNS
            }
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(history.c.id)
        .cte("entry")
    )
    table = MlCredits.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("account_id"), exists(select(entry.c.id)))
        .values(**_account_values())
        .returning(select(entry.c.id).scalar_subquery())
    )


def _write(connection, values: dict[str, Any], account: dict[str, Any]) -> int | None:
    """Insert the row `values` and update the account, or neither when the key is
    taken; return the new row's id or None."""
    if connection.dialect.name == "postgresql":
        row = {f"row_{name}": values[name] for name in ledger.ENTRY_COLUMNS}
        return connection.execute(
            _write_statement_postgresql(), {**row, **account}
        ).scalar()
    statement = ledger.insert_once_statement(connection.dialect.name)
    entry_id = connection.execute(statement, values).scalar()
    if entry_id is not None:
        connection.execute(_update_statement(), account)
    return entry_id


def try_consume(
    session: Session,
    tenant: Tenant,
    amount: int,
    *,
    operation: str,
    key: str,
    now: dt.datetime,
    context: dict[str, Any] | None,
    processing_time_ms: float | None,
) -> tuple[dict[str, Any], bool] | None:
    """Charge `amount` from the allowance alone, or return None having written
    nothing. Returns the ledger row's column values and whether credits were
    enabled.

    The caller validated the arguments; the account stays locked either way."""
    from qml_cli.core.flags import FLAG_SETTINGS
    from qml_cli.core.settings import get_settings

    connection = session.connection()
    with_flag = CREDITS_FLAG in FLAG_SETTINGS
    statement = _lock_statement(connection.dialect.name, with_flag)
    row = connection.execute(statement, {"tenant_id": tenant.id}).one()
    account_id, remaining, grant_remaining, held, used, period_end, next_grant = row[:7]
    enabled = get_settings().values[CREDITS_FLAG]
    if with_flag and row[8] is not None:
        enabled = bool(row[8])
    cost = amount if enabled else 0
    if (
        period_end <= now
        or (next_grant is not None and next_grant <= now)
        or grant_remaining
        or held
        or row[7] != "active"
        or cost > remaining
    ):
        return None

    fields_context = {**(context or {}), "amount": amount}
    if not enabled:
        fields_context["credits_disabled"] = True
    values = ledger.entry_values(
        tenant,
        _Figures(remaining - cost, grant_remaining),
        kind="consume",
        operation=operation,
        buckets={ledger.ALLOWANCE: -cost},
        now=now,
        idempotency_key=key,
        context=fields_context,
        processing_time_ms=processing_time_ms,
    )
    values["id"] = _write(
        connection,
        values,
        {
            "account_id": account_id,
            "new_remaining": remaining - cost,
            "new_used": used + cost,
            "account_updated_at": now,
        },
    )
    if values["id"] is None:
        return None
    ledger.log_entry(values)
    # An account object this session loaded before is now stale; reload it on use.
    loaded = session.identity_map.get(identity_key(MlCredits, account_id))
    if loaded is not None:
        session.expire(loaded)
    return values, enabled


class _Figures:
    """The balances a ledger row needs (`ledger.balance` reads these two)."""

    def __init__(self, allowance_remaining: int, grant_remaining: int) -> None:
        self.allowance_remaining = allowance_remaining
        self.grant_remaining = grant_remaining
        self.updated_at: dt.datetime | None = None
