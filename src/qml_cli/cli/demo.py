"""`qml demo`: the main job end to end on the embedded database and real sales data."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from qml_cli.cli.output import console, say

# (tenant slug, example file, plan, time zone)
DEMO_TENANTS = (
    (
        "united-kingdom",
        "revenue_united-kingdom.csv",
        "quantum_premium",
        "Europe/London",
    ),
    ("germany", "revenue_germany.csv", "quantum_plus", "Europe/Berlin"),
    ("france", "revenue_france.csv", "quantum_plus", "Europe/Paris"),
    ("eire", "revenue_eire.csv", "standard", "Europe/Dublin"),
)
DEMO_HORIZON = 14


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "demo_data"


def demo(
    reset: Annotated[
        bool,
        typer.Option(
            "--reset", help="Delete an existing embedded database under QML_HOME first."
        ),
    ] = False,
) -> None:
    """Run the main job on example data: migrate, seed, import, forecast, charge."""
    from qml_cli.cli.app import app
    from qml_cli.core import settings
    from qml_cli.core.db import make_engine
    from qml_cli.errors import InvalidInput

    home = settings.default_home()
    database = home / "qml.sqlite3"
    if database.exists():
        if not reset:
            raise InvalidInput(
                f"a database already exists at {database}.",
                hint="Pass --reset to replace it, or set QML_HOME to another folder.",
            )
        make_engine.cache_clear()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    data = _data_dir()
    if not (data / DEMO_TENANTS[0][1]).is_file():
        raise InvalidInput(
            f"example data not found in {data}.",
            hint="Reinstall qml-cli; the package ships the example data.",
        )
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    settings.reset_settings()
    started = time.perf_counter()

    def step(*args: str) -> None:
        console.print()
        console.print(Text(f"$ qml {shlex.join(args)}", style="bold"))
        try:
            app(list(args), standalone_mode=False, prog_name="qml")
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        except typer.Exit as exc:
            if exc.exit_code not in (0, None):
                raise

    say(f"Demo database: {database}")
    step("db", "migrate")
    step("seed", "plans")
    step("seed", "ml-config")
    for slug, filename, plan, timezone in DEMO_TENANTS:
        step("tenants", "create", slug, "--plan", plan, "--timezone", timezone)
        step("data", "import", slug, "revenue", str(data / filename))
        step(
            "predict",
            "create",
            slug,
            "revenue-forecast",
            "--metric",
            "revenue",
            "--horizon",
            str(DEMO_HORIZON),
            "--schedule",
            "0 6 * * *",
            "--start",
            "now",
        )
    step("predict", "run", "--due")
    for slug, *_ in DEMO_TENANTS:
        step("predict", "show", f"{slug}/revenue-forecast")
    for slug, *_ in DEMO_TENANTS:
        step("credits", "status", slug)
    step("credits", "audit")
    say(
        f"\nDemo finished in {time.perf_counter() - started:.1f} s. The database stays at "
        f"{database}; try: qml predict list"
    )
