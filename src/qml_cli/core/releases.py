"""`qml deploy record`: releases with their schema revision and a backup at it.

`qml rollback --to-version` reads them to migrate back to a release's revision and
restore its backup.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from qml_cli.core import clock
from qml_cli.errors import CheckFailed, Conflict, InvalidInput

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def record(
    version: str,
    *,
    backup_id: str | None = None,
    take_backup: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Store a release with its version, the current schema revision and a backup
    taken at that revision, a new one unless `backup_id` names one.

    Recording the same version at the same revision again changes nothing. Raises
    `Conflict` when the version is recorded at another revision."""
    from qml_cli.core import backup, migrate
    from qml_cli.core.db import get_engine, session_scope
    from qml_cli.core.models import Release

    if not VERSION_PATTERN.fullmatch(version or ""):
        raise InvalidInput(
            f"invalid version {version!r}.",
            hint="Use 1-64 letters, digits, dots, dashes, plus signs or "
            "underscores, e.g. 1.4.0.",
        )
    engine = engine or get_engine()
    revision = migrate.current_revision(engine)
    if revision is None:
        raise CheckFailed("the database has no qml schema.", hint="Run: qml db migrate")
    with session_scope(engine) as session:
        existing = session.scalar(select(Release).where(Release.version == version))
        if existing is not None:
            if existing.schema_revision != revision:
                raise Conflict(
                    f"release {version} is recorded at schema revision "
                    f"{existing.schema_revision}, the database is at {revision}.",
                    hint="Record the new deployment under a new version.",
                )
            return {**_release_dict(existing), "replayed": True}
    if backup_id:
        manifest = backup.read_manifest(backup.find_backup(backup_id))
        if manifest["schema_revision"] != revision:
            raise Conflict(
                f"backup {backup_id} is at schema revision "
                f"{manifest['schema_revision']}, the database at {revision}.",
                hint="Pick a backup taken since the migration, or omit "
                "--backup to take one.",
            )
        backup_id = manifest["id"]
    elif take_backup:
        backup_id = backup.create(kind="release", engine=engine)["id"]
    with session_scope(engine) as session:
        release = Release(
            version=version,
            schema_revision=revision,
            backup_id=backup_id,
            created_at=clock.now(),
        )
        session.add(release)
        session.flush()
        return {**_release_dict(release), "replayed": False}


def _release_dict(release: Any) -> dict[str, Any]:
    return {
        "version": release.version,
        "schema_revision": release.schema_revision,
        "backup_id": release.backup_id,
        "created_at": release.created_at,
    }


def releases(engine: Engine | None = None) -> list[dict[str, Any]]:
    """Return the recorded releases, newest first."""
    from qml_cli.core.db import get_engine, session_scope
    from qml_cli.core.models import Release

    with session_scope(engine or get_engine()) as session:
        rows = session.scalars(
            select(Release).order_by(Release.created_at.desc(), Release.id.desc())
        ).all()
        return [_release_dict(row) for row in rows]
