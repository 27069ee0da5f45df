"""`qml health`, `qml deploy` and `qml rollback`: checks around a release."""

from __future__ import annotations

from typing import Annotated

import typer

from qml_cli.cli.common import JsonOption
from qml_cli.cli.output import print_json, print_table, say

health_app = typer.Typer(
    help="Health of the database, Redis, ML service and quantum engine.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add `health`, `deploy` and `rollback` to the root command."""
    app.add_typer(health_app, name="health")


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

    server = HealthServer(host, port, get_engine())

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
