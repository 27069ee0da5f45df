"""`qml health`, `qml deploy` and `qml rollback`: checks around a release."""

from __future__ import annotations

from typing import Annotated

import typer

from qml_cli.cli.common import DryRunOption, JsonOption, YesOption, confirm_or_abort
from qml_cli.cli.output import print_json, print_table, say

health_app = typer.Typer(
    help="Health of the database, Redis, ML service and quantum engine.",
    invoke_without_command=True,
)


deploy_app = typer.Typer(help="Verify and record deployments.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `health`, `deploy` and `rollback` to the root command."""
    app.add_typer(health_app, name="health")
    app.add_typer(deploy_app, name="deploy")
    app.command("rollback")(rollback)


def _print_health(document: dict) -> None:
    rows = []
    for key, results in document["checks"].items():
        for item in results:
            value = item.get("observedValue")
            unit = item.get("observedUnit", "")
            shown = "" if value is None else f"{value} {unit}".strip()
            rows.append((key, item["status"], shown, item.get("output", "")))
    print_table(
        f"health: {document['status']}", ["check", "status", "observed", "output"], rows
    )


@health_app.callback()
def health(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Print the health document; exit 0 for pass or warn, 1 for fail."""
    if ctx.invoked_subcommand is not None:
        return
    from qml_cli.core import health as core

    document = core.health()
    if json_output:
        print_json(document)
    else:
        _print_health(document)
    if document["status"] == "fail":
        raise typer.Exit(1)


@health_app.command("serve")
def health_serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="TCP port; 0 picks a free one."),
    ] = 8080,
) -> None:
    """Serve /health, /livez and /readyz over HTTP until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from qml_cli.core.db import get_engine
    from qml_cli.core.health_server import HealthServer

    from qml_cli.errors import InvalidInput

    try:
        server = HealthServer(host, port, get_engine())
    except OSError as exc:  # port in use, no such address, permission denied
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Pick another --port (0 picks a free one) or --host.",
        ) from None

    def stop(_signum, _frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say(f"Serving health on {server.url} (/health, /livez, /readyz).")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    say("Health server stopped.")


@deploy_app.command("verify")
def deploy_verify(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Base URL of the deployed health server, e.g. http://10.0.0.5:8080.",
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help="Leave out a check by name (repeatable), e.g. jobs on a first "
            "deployment.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Run the production checklist with a reason per item; exit 1 if one fails."""
    from qml_cli.core import deploy

    report = deploy.verify(url=url, skip=tuple(skip or ()))
    if json_output:
        print_json(report)
    else:
        print_table(
            "deploy checklist",
            ["check", "status", "detail"],
            [(i["title"], i["status"].upper(), i["detail"]) for i in report["items"]],
        )
        failed = sum(i["status"] == "fail" for i in report["items"])
        say("Ready to serve." if report["ok"] else f"{failed} checks failed.")
    if not report["ok"]:
        raise typer.Exit(1)


@deploy_app.command("record")
def deploy_record(
    version: Annotated[
        str, typer.Option("--version", help="Release version, e.g. 1.4.0.")
    ],
    backup_id: Annotated[
        str | None,
        typer.Option("--backup", help="Backup to attach (default: take one now)."),
    ] = None,
    no_backup: Annotated[
        bool,
        typer.Option(
            "--no-backup", help="Record without a backup; --restore cannot use it."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Store a release with its schema revision and a backup at that revision."""
    from qml_cli.core import releases

    release = releases.record(version, backup_id=backup_id, take_backup=not no_backup)
    if json_output:
        print_json(release)
    elif release["replayed"]:
        say(
            f"Release {version} already recorded at revision "
            f"{release['schema_revision']}; nothing changed."
        )
    else:
        revision, saved = release["schema_revision"], release["backup_id"] or "none"
        say(
            f"Recorded release {version} at schema revision {revision}, backup {saved}."
        )


@deploy_app.command("list")
def deploy_list(json_output: JsonOption = False) -> None:
    """List the recorded releases, newest first."""
    from qml_cli.core import releases as core

    releases = core.releases()
    if json_output:
        print_json(releases)
        return
    print_table(
        "releases",
        ["version", "schema revision", "backup", "recorded"],
        [
            (
                r["version"],
                r["schema_revision"],
                r["backup_id"] or "",
                f"{r['created_at']:%Y-%m-%d %H:%M}",
            )
            for r in releases
        ],
    )


def rollback(
    to_version: Annotated[
        str | None,
        typer.Option(
            "--to-version",
            help="Migrate the schema to this recorded release's revision.",
        ),
    ] = None,
    to_backup: Annotated[
        str | None,
        typer.Option(
            "--to-backup",
            help="Restore this backup, migrating the schema to its revision first.",
        ),
    ] = None,
    ml_only: Annotated[
        bool,
        typer.Option(
            "--ml-only",
            help="Turn credits, quantum algorithms and auto-predictions off "
            "through stored feature flags.",
        ),
    ] = False,
    undo: Annotated[
        bool,
        typer.Option("--undo", help="With --ml-only: remove the stored flags again."),
    ] = False,
    restore: Annotated[
        bool,
        typer.Option(
            "--restore", help="With --to-version: also restore the release's backup."
        ),
    ] = False,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Roll back to a release or a backup, or turn ML features off, after a plan."""
    from qml_cli.core import rollback as core

    plan = core.plan(
        to_version=to_version,
        to_backup=to_backup,
        ml_only=ml_only,
        undo=undo,
        restore=restore,
    )
    if not json_output:
        say(f"Rollback plan ({plan['mode']}):")
        for number, step in enumerate(plan["steps"], start=1):
            say(f"  {number}. {step['description']}")
    if dry_run:
        if json_output:
            print_json({**plan, "dry_run": True})
        else:
            say("Dry run: nothing changed.")
        return
    confirm_or_abort("Run this rollback?", yes)
    result = core.execute(plan)
    if json_output:
        print_json(result)
        return
    if result["safety_backup"]:
        safety = result["safety_backup"]
        back = (
            "qml rollback --ml-only --undo"
            if ml_only and not undo
            else f"qml rollback --to-backup {safety}"
        )
        say(f"Took safety backup {safety}; to go back, run: {back}")
    say(f"Rollback done: {len(result['steps'])} steps.")
