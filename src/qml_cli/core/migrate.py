"""Schema migrations through Alembic, with the revisions shipped inside the package."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from qml_cli.core.db import get_engine, mask_url, ping
from qml_cli.errors import CheckFailed, InvalidInput, ServiceUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    return _script().get_current_head()


def revisions() -> list[dict[str, str | None]]:
    """Return every revision from base to head with its one-line description."""
    script = _script()
    result = []
    for revision in reversed(list(script.walk_revisions())):
        result.append(
            {
                "revision": revision.revision,
                "down_revision": revision.down_revision,
                "description": (revision.doc or "").strip().splitlines()[0],
            }
        )
    return result


def _check_target(revision: str, *, allow_base: bool) -> str:
    known = {item["revision"] for item in revisions()}
    if (
        revision in ("head", "heads")
        or revision in known
        or (allow_base and revision == "base")
    ):
        return revision
    choices = ", ".join(sorted(known) + (["base"] if allow_base else []) + ["head"])
    raise InvalidInput(
        f"unknown revision {revision!r}.", hint=f"Use one of: {choices}."
    )


def current_revision(engine: Engine | None = None) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = engine or get_engine()
    ping(engine)
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(
    target: str = "head", engine: Engine | None = None
) -> tuple[str | None, str]:
    """Upgrade to `target`; return (revision before, revision after)."""
    from alembic import command

    target = _check_target(target, allow_base=False)
    engine = engine or get_engine()
    before = current_revision(engine)
    order = [item["revision"] for item in revisions()]
    if (
        before in order
        and target in order
        and order.index(target) < order.index(before)
    ):
        raise InvalidInput(
            f"revision {target} is below the current revision {before}.",
            hint=f"To go back, run: qml db downgrade --to {target}",
        )
    with engine.begin() as connection:
        command.upgrade(_config(connection), target)
    return before, current_revision(engine)


def downgrade(
    target: str, engine: Engine | None = None
) -> tuple[str | None, str | None]:
    """Downgrade to `target` (a revision or `base`); return (before, after)."""
    from alembic import command

    target = _check_target(target, allow_base=True)
    engine = engine or get_engine()
    before = current_revision(engine)
    with engine.begin() as connection:
        command.downgrade(_config(connection), target)
    return before, current_revision(engine)


@dataclass
class DbStatus:
    url: str
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def check(
    retries: int = 0, delay_s: float = 2.0, engine: Engine | None = None
) -> DbStatus:
    """Check reachability (retrying) and that the schema is at head.

    Raises `ServiceUnavailable` after the last failed retry and `CheckFailed` when the
    schema is behind."""
    engine = engine or get_engine()
    for attempt in range(retries + 1):
        try:
            current = current_revision(engine)
            break
        except ServiceUnavailable:
            if attempt == retries:
                raise
            time.sleep(delay_s)
    status = DbStatus(mask_url(str(engine.url)), current, head_revision())
    if not status.at_head:
        raise CheckFailed(
            f"database at revision {current or 'base'}, head is {status.head}.",
            hint="Run: qml db migrate",
        )
    return status


def verify(engine: Engine | None = None) -> dict:
    """List the missing tables, indexes and seeds; an empty `missing` means complete."""
    from qml_cli.core import models

    engine = engine or get_engine()
    ping(engine)
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    missing: list[str] = []
    for name in models.Base.metadata.tables:
        if name not in tables:
            missing.append(f"table {name}")
    for index in models.HOT_INDEXES + models.LATER_INDEXES:
        table = index.table.name
        if table in tables:
            present = {item["name"] for item in inspector.get_indexes(table)}
            if index.name not in present:
                missing.append(f"index {index.name} on {table}")
    seeded = {"plans": 0, "ml_config": 0}
    if "subscription_plans" in tables:
        with engine.connect() as connection:
            seeded["plans"] = connection.execute(
                text("SELECT COUNT(*) FROM subscription_plans")
            ).scalar_one()
            if "ml_config" in tables:
                seeded["ml_config"] = connection.execute(
                    text("SELECT COUNT(*) FROM ml_config WHERE key = 'operation_costs'")
                ).scalar_one()
    from qml_cli.core.seeds import CANONICAL_PLANS

    if "subscription_plans" in tables:
        with engine.connect() as connection:
            names = set(
                connection.execute(
                    text("SELECT name FROM subscription_plans")
                ).scalars()
            )
        for plan in CANONICAL_PLANS:
            if plan["name"] not in names:
                missing.append(f"seeded plan {plan['name']}")
    if seeded["ml_config"] == 0:
        missing.append("seeded ml-config operation costs")
    revision = current_revision(engine)
    head = head_revision()
    if revision != head:
        missing.append(f"revision {head} (database at {revision or 'base'})")
    return {
        "ok": not missing,
        "missing": missing,
        "revision": revision,
        "head": head,
        "seeded": seeded,
    }
