"""`qml deploy verify`: the release checklist, executable.

Each item of the checklist is a function that returns its detail or raises a
`QmlError`. `verify` runs them in order and reports pass, fail or skip with the
reason for each. Items that need the database are skipped when it is unreachable.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from qml_cli.core import clock
from qml_cli.core.logs import get_logger
from qml_cli.errors import CheckFailed, InvalidInput, QmlError

log = get_logger("deploy")
BACKUP_MAX_AGE = dt.timedelta(days=1)
HTTP_TIMEOUT_S = 10


class Skipped(Exception):
    """Raised when the item does not apply here; the message gives the reason."""


@dataclass(frozen=True)
class Item:
    key: str
    title: str
    needs_database: bool


ITEMS = (
    Item("config", "configuration valid", False),
    Item("database", "database reachable", False),
    Item("migrations", "migrations at head", True),
    Item("seeds", "plans and ML config seeded", True),
    Item("indexes", "tables and indexes present", True),
    Item("redis", "Redis reachable", False),
    Item("quantum", "quantum self-test", False),
    Item("smoke-insight", "smoke insight on a scratch tenant", True),
    Item("smoke-prediction", "smoke prediction on a scratch tenant", True),
    Item("backup", "backup younger than a day", True),
    Item("jobs", "scheduled jobs ran recently", True),
    Item("endpoints", "deployed health endpoints", False),
)
ITEM_KEYS = tuple(item.key for item in ITEMS)


def check_config(context: dict[str, Any]) -> str:
    from qml_cli.core import config_check, settings

    loaded = settings.load_settings(settings.get_settings().env_file)
    findings = config_check.check(loaded, services=False)
    errors = [f"{f.setting} {f.message}" for f in findings if f.level == "error"]
    if errors:
        raise CheckFailed("; ".join(errors))
    warnings = [f"{f.setting} {f.message}" for f in findings if f.level == "warning"]
    return "; ".join(warnings) if warnings else "every setting valid"


def check_database(context: dict[str, Any]) -> str:
    from qml_cli.core.db import mask_url, ping

    engine = context["engine"]
    ping(engine)
    return f"{mask_url(str(engine.url))} answers"


def check_migrations(context: dict[str, Any]) -> str:
    from qml_cli.core import migrate

    current, head = migrate.current_revision(context["engine"]), migrate.head_revision()
    if current != head:
        raise CheckFailed(
            f"database at revision {current or 'base'}, head is {head}.",
            hint="Run: qml db migrate",
        )
    return f"at revision {head}"


def _missing(context: dict[str, Any]) -> list[str]:
    from qml_cli.core import migrate

    if "missing" not in context:
        context["missing"] = migrate.verify(context["engine"])["missing"]
    return context["missing"]


def check_seeds(context: dict[str, Any]) -> str:
    missing = [item for item in _missing(context) if item.startswith("seeded")]
    if missing:
        raise CheckFailed(
            "missing " + ", ".join(missing) + ".",
            hint="Run: qml seed plans && qml seed ml-config",
        )
    return "canonical plans and operation costs stored"


def check_indexes(context: dict[str, Any]) -> str:
    missing = [
        item for item in _missing(context) if item.startswith(("table", "index"))
    ]
    if missing:
        raise CheckFailed(
            "missing " + ", ".join(missing) + ".",
            hint="Run: qml db verify, then qml db migrate or recreate them.",
        )
    return "every table and hot index present"


def check_redis(context: dict[str, Any]) -> str:
    from qml_cli.core.cache import ping_redis
    from qml_cli.core.settings import get_settings

    url = get_settings().values.get("REDIS_URL")
    if not url:
        raise Skipped("REDIS_URL is not set, so the database keeps the cache and locks")
    return f"PING answered in {ping_redis(url):.1f} ms"


def check_quantum(context: dict[str, Any]) -> str:
    try:
        from qml_cli.quantum.selftest import run_selftest
    except ImportError:
        raise Skipped(
            "not available: qml_cli.quantum.selftest is not installed"
        ) from None
    report = run_selftest()
    failed = [item["name"] for item in report["checks"] if not item["ok"]]
    if failed:
        raise CheckFailed(f"self-test checks failed: {', '.join(failed)}.")
    return f"{len(report['checks'])} checks passed in {report['wall_time_s']:.2f} s"


def check_smoke_insight(context: dict[str, Any]) -> str:
    from qml_cli.core import smoke

    return smoke.smoke_insight(context["engine"])


def check_smoke_prediction(context: dict[str, Any]) -> str:
    from qml_cli.core import smoke

    return smoke.smoke_prediction(context["engine"])


def check_backup(context: dict[str, Any]) -> str:
    from qml_cli.core import backup, backup_restore

    backups = backup.list_backups()
    if not backups:
        raise CheckFailed(
            f"no backup in {backup.backup_dir()}.", hint="Run: qml backup create"
        )
    newest = backups[0]
    age = backup.age(newest, context["now"])
    if age > BACKUP_MAX_AGE:
        raise CheckFailed(
            f"the newest backup, {newest['id']}, is {_hours(age)} old.",
            hint="Run: qml backup create, and check the daily backup job.",
        )
    from pathlib import Path

    backup_restore.check_files(Path(newest["path"]), newest)
    return f"{newest['id']}, {_hours(age)} old, files match their SHA-256"


def _hours(age: dt.timedelta) -> str:
    return f"{age.total_seconds() / 3600:.1f} h"


def check_jobs(context: dict[str, Any]) -> str:
    from qml_cli.core import scheduler

    report = scheduler.status(context["engine"], context["now"])
    stale = []
    for job in report:
        if job["recent"]:
            continue
        if job["last_started_at"] is None:
            stale.append(f"{job['job']} never ran")
        else:
            stale.append(
                f"{job['job']} last ran {job['last_started_at']:%Y-%m-%d %H:%M} "
                f"({job['last_status']})"
            )
    if stale:
        raise CheckFailed(
            "; ".join(stale) + ".",
            hint="Install the crontab (qml cron print) or run qml scheduler run.",
        )
    return f"{len(report)} jobs ran in their latest slots"


def _fetch(url: str) -> tuple[int, str, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/health+json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return (
                response.status,
                response.headers.get("Content-Type", ""),
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CheckFailed(
            f"{url} did not respond: {getattr(exc, 'reason', exc)}."
        ) from None


def check_endpoints(context: dict[str, Any]) -> str:
    """GET /health, /livez and /readyz: 200, the health media type, and a body whose
    status is pass or warn."""
    from qml_cli.core.health import MEDIA_TYPE

    base = context.get("url")
    if not base:
        raise Skipped("no --url given")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(f"invalid --url {base!r}.", hint="Use http:// or https://.")
    problems, answered = [], []
    for path in ("/health", "/livez", "/readyz"):
        status, content_type, body = _fetch(base.rstrip("/") + path)
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        state = document.get("status") if isinstance(document, dict) else None
        if status != 200 or state not in ("pass", "warn"):
            problems.append(f"{path} answered {status} with status {state!r}")
        elif not content_type.startswith(MEDIA_TYPE):
            problems.append(f"{path} answered Content-Type {content_type!r}")
        else:
            answered.append(f"{path} {state}")
    if problems:
        raise CheckFailed("; ".join(problems) + ".")
    return ", ".join(answered)


CHECKS: dict[str, Callable[[dict[str, Any]], str]] = {
    "config": check_config,
    "database": check_database,
    "migrations": check_migrations,
    "seeds": check_seeds,
    "indexes": check_indexes,
    "redis": check_redis,
    "quantum": check_quantum,
    "smoke-insight": check_smoke_insight,
    "smoke-prediction": check_smoke_prediction,
    "backup": check_backup,
    "jobs": check_jobs,
    "endpoints": check_endpoints,
}


def _run_item(item: Item, context: dict[str, Any]) -> dict[str, str]:
    try:
        detail, status = CHECKS[item.key](context), "pass"
    except Skipped as exc:
        detail, status = str(exc), "skip"
    except QmlError as exc:
        detail, status = str(exc), "fail"
    except Exception as exc:  # a checklist reports every item, whatever breaks
        log.error(
            "deploy check raised", extra={"operation": item.key, "error": repr(exc)}
        )
        detail, status = f"{type(exc).__name__}: {exc}", "fail"
    return {"check": item.key, "title": item.title, "status": status, "detail": detail}


def verify(
    *, url: str | None = None, skip: tuple[str, ...] = (), engine: Engine | None = None
) -> dict[str, Any]:
    """Run the checklist; `ok` is false when any item failed."""
    from qml_cli.core.db import get_engine

    unknown = sorted(set(skip) - set(ITEM_KEYS))
    if unknown:
        raise InvalidInput(
            f"unknown check {', '.join(unknown)} for --skip.",
            hint=f"Use one of: {', '.join(ITEM_KEYS)}.",
        )
    context = {"engine": engine or get_engine(), "now": clock.now(), "url": url}
    results = []
    database_up = True
    for item in ITEMS:
        if item.key in skip:
            result = {
                "check": item.key,
                "title": item.title,
                "status": "skip",
                "detail": "skipped with --skip",
            }
        elif item.needs_database and not database_up:
            result = {
                "check": item.key,
                "title": item.title,
                "status": "skip",
                "detail": "database unreachable",
            }
        else:
            result = _run_item(item, context)
        if item.key == "database" and result["status"] == "fail":
            database_up = False
        results.append(result)
    return {
        "ok": all(r["status"] != "fail" for r in results),
        "checked_at": context["now"],
        "items": results,
    }
