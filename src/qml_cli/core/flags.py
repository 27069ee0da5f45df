"""Feature flags stored in the database, which override the environment.

`qml rollback --ml-only` writes them to switch ML features off on every host at
once, without a redeploy; `--undo` deletes them so the environment rules again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from qml_cli.core.models import FeatureFlag, utcnow
from qml_cli.core.settings import get_settings

# Settings that a stored flag can override.
FLAG_SETTINGS = (
    "ML_CREDITS_ENABLED",
    "QUANTUM_ALGORITHMS_ENABLED",
    "AUTO_PREDICTIONS_ENABLED",
)


_engines_with_table: set[str] = set()


def stored_flags(session: Session) -> dict[str, bool]:
    """Return the stored overrides; empty before the table exists."""
    bind = session.get_bind()
    url = str(bind.engine.url)
    if url not in _engines_with_table:
        if not inspect(session.connection()).has_table(FeatureFlag.__tablename__):
            return {}
        _engines_with_table.add(url)
    return {flag.name: flag.enabled for flag in session.scalars(select(FeatureFlag))}


def effective_settings(session: Session | None = None) -> dict[str, Any]:
    """Return the settings values with stored flags applied over the environment."""
    values = dict(get_settings().values)
    if session is not None:
        for name, enabled in stored_flags(session).items():
            if name in FLAG_SETTINGS:
                values[name] = enabled
    return values


def set_flags(session: Session, changes: dict[str, bool], reason: str) -> None:
    for name, enabled in changes.items():
        row = session.get(FeatureFlag, name)
        if row is None:
            session.add(FeatureFlag(name=name, enabled=enabled, reason=reason))
        else:
            row.enabled, row.reason, row.updated_at = enabled, reason, utcnow()
    session.flush()


def clear_flags(session: Session, names=FLAG_SETTINGS) -> list[str]:
    cleared = []
    for name in names:
        row = session.get(FeatureFlag, name)
        if row is not None:
            session.delete(row)
            cleared.append(name)
    session.flush()
    return cleared
