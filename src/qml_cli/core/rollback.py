"""`qml rollback`: back to a recorded release, to a backup, or ML features off.

`plan` validates the request and lists the steps without changing anything;
`execute` runs them under the `rollback` lock, starting with a safety backup.
Every step is one the operator can run again by hand: `qml db downgrade`,
`qml backup restore`, or the stored feature flags of `core.flags`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.errors import CheckFailed, InvalidInput, NotFound

log = get_logger("rollback")
# The ML features that `--ml-only` switches off through stored flags.
ML_FLAGS = {
    "ML_CREDITS_ENABLED": False,
    "QUANTUM_ALGORITHMS_ENABLED": False,
    "AUTO_PREDICTIONS_ENABLED": False,
}


def _release(engine: Engine, version: str) -> dict[str, Any]:
    from qml_cli.core.db import session_scope
    from qml_cli.core.models import Release

    with session_scope(engine) as session:
        row = session.scalar(select(Release).where(Release.version == version))
        if row is None:
            known = session.scalars(select(Release.version).order_by(Release.id)).all()
            raise NotFound(
                f"release {version!r} not found.",
                hint=f"Recorded releases: {', '.join(known) or 'none'}; "
                "record one with qml deploy record --version V.",
            )
        return {
            "version": row.version,
            "schema_revision": row.schema_revision,
            "backup_id": row.backup_id,
        }


def _migration_step(current: str | None, target: str) -> dict[str, Any] | None:
    from qml_cli.core import migrate

    if current == target:
        return None
    order = [item["revision"] for item in migrate.revisions()]
    if target not in order:
        raise CheckFailed(
            f"schema revision {target} is unknown to this qml version.",
            hint="Run the rollback with the qml version of that release.",
        )
    start = order.index(current) if current in order else -1
    end = order.index(target)
    if end < start:
        undone = migrate.revisions()[end + 1 : start + 1]
        names = "; ".join(
            f"{r['revision']} {r['description']}" for r in reversed(undone)
        )
        return {
            "action": "downgrade",
            "target": target,
            "description": f"Downgrade the schema from {current} to {target}, "
            f"undoing: {names}.",
        }
    return {
        "action": "upgrade",
        "target": target,
        "description": f"Upgrade the schema from {current or 'base'} to {target}.",
    }


def _restore_step(backup_id: str) -> dict[str, Any]:
    from qml_cli.core import backup

    manifest = backup.read_manifest(backup.find_backup(backup_id))
    rows = sum(info["rows"] for info in manifest["tables"].values())
    return {
        "action": "restore",
        "target": manifest["id"],
        "revision": manifest["schema_revision"],
        "description": f"Restore backup {manifest['id']} ({manifest['scope']} tables, "
        f"{rows} rows, taken {manifest['created_at']} at revision "
        f"{manifest['schema_revision']}), replacing the current rows.",
    }


def _flag_steps(engine: Engine, undo: bool) -> list[dict[str, Any]]:
    from qml_cli.core.db import session_scope
    from qml_cli.core.flags import stored_flags

    if not undo:
        names = ", ".join(f"{name}=false" for name in ML_FLAGS)
        return [
            {
                "action": "set_flags",
                "target": dict(ML_FLAGS),
                "description": f"Store feature flags {names}; every host reads them "
                "over its environment.",
            }
        ]
    with session_scope(engine) as session:
        stored = [name for name in stored_flags(session) if name in ML_FLAGS]
    if not stored:
        return [
            {
                "action": "none",
                "target": None,
                "description": "No stored ML flags to remove; the environment rules.",
            }
        ]
    return [
        {
            "action": "clear_flags",
            "target": stored,
            "description": f"Remove the stored flags {', '.join(stored)}, so the "
            "environment's values apply again.",
        }
    ]


def plan(
    *,
    to_version: str | None = None,
    to_backup: str | None = None,
    ml_only: bool = False,
    undo: bool = False,
    restore: bool = False,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Validate the request and return its steps; raise `InvalidInput` for an
    inconsistent combination and `NotFound` for an unknown release or backup."""
    from qml_cli.core import migrate
    from qml_cli.core.db import get_engine

    modes = [
        m
        for m, on in (
            ("--to-version", to_version),
            ("--to-backup", to_backup),
            ("--ml-only", ml_only),
        )
        if on
    ]
    if len(modes) != 1:
        raise InvalidInput(
            "pass exactly one of --to-version, --to-backup and --ml-only.",
            hint="e.g. qml rollback --ml-only --dry-run",
        )
    if restore and not to_version:
        raise InvalidInput("--restore goes with --to-version.")
    if undo and not ml_only:
        raise InvalidInput("--undo goes with --ml-only.")
    engine = engine or get_engine()
    current = migrate.current_revision(engine)
    steps: list[dict[str, Any]] = []
    if current is None:
        steps.append(
            {
                "action": "none",
                "target": None,
                "description": "No safety backup: the database has no qml schema yet.",
            }
        )
    else:
        steps.append(
            {
                "action": "safety_backup",
                "target": "ml",
                "description": "Take a safety backup of the ML tables.",
            }
        )
    target = to_version or to_backup or "ML features"
    if to_version:
        release = _release(engine, to_version)
        migration = _migration_step(current, release["schema_revision"])
        steps += [migration] if migration else []
        if restore:
            if not release["backup_id"]:
                raise CheckFailed(
                    f"release {to_version} has no backup to restore.",
                    hint="Roll back the schema without --restore.",
                )
            steps.append(_restore_step(release["backup_id"]))
    elif to_backup:
        restore_step = _restore_step(to_backup)
        migration = _migration_step(current, restore_step["revision"])
        steps += ([migration] if migration else []) + [restore_step]
    else:
        steps += _flag_steps(engine, undo)
    mode = modes[0] + (" --undo" if undo else "")
    return {"mode": mode, "target": target, "schema_revision": current, "steps": steps}


def execute(
    rollback_plan: dict[str, Any], engine: Engine | None = None
) -> dict[str, Any]:
    """Run the planned steps in order under the `rollback` lock; return what each did.
    A failing step raises, and the steps before it stay done."""
    from qml_cli.core import backup, backup_restore, flags, jobs, migrate
    from qml_cli.core.db import get_engine, session_scope

    engine = engine or get_engine()
    done = []
    with jobs.job_lock(engine, "rollback"):
        for step in rollback_plan["steps"]:
            action, outcome = step["action"], None
            if action == "safety_backup":
                outcome = backup.create(scope="ml", kind="safety", engine=engine)["id"]
            elif action == "downgrade":
                outcome = migrate.downgrade(step["target"], engine)[1]
            elif action == "upgrade":
                outcome = migrate.upgrade(step["target"], engine)[1]
            elif action == "restore":
                outcome = backup_restore.restore(
                    step["target"], engine=engine, safety=False
                )["id"]
            elif action == "set_flags":
                with session_scope(engine) as session:
                    flags.set_flags(
                        session,
                        step["target"],
                        reason=f"qml rollback --ml-only at "
                        f"{clock.now():%Y-%m-%d %H:%M} UTC",
                    )
                outcome = sorted(step["target"])
            elif action == "clear_flags":
                with session_scope(engine) as session:
                    outcome = flags.clear_flags(session, step["target"])
            log.info("rollback step done", extra={"operation": f"rollback_{action}"})
            done.append({**step, "outcome": outcome})
    safety = next((s["outcome"] for s in done if s["action"] == "safety_backup"), None)
    return {**rollback_plan, "steps": done, "safety_backup": safety}
