"""`qml seed`: canonical plans, operation costs, test-data removal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qml_cli.cli.common import (
    DryRunOption,
    JsonOption,
    YesOption,
    confirm_or_abort,
    session,
)
from qml_cli.cli.output import print_json, print_table, say

app = typer.Typer(
    help="Seed plans and configuration; remove test data.", no_args_is_help=True
)


@app.command()
def plans(
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from", help="JSON list of plans to upsert instead of the canonical ones."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Insert or update the subscription plans (idempotent)."""
    from qml_cli.core import seeds

    data = seeds.load_plans_file(from_file) if from_file else seeds.CANONICAL_PLANS
    with session() as db:
        outcome = seeds.upsert_plans(db, data)
    if json_output:
        print_json(outcome)
    else:
        print_table("plans", ["plan", "result"], outcome.items())


@app.command("ml-config")
def ml_config(
    set_cost: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a cost, as OPERATION=CREDITS (repeatable)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Store the credit cost of each operation, keeping costs already changed."""
    from qml_cli.core import seeds
    from qml_cli.errors import InvalidInput

    changes = {}
    for item in set_cost or []:
        operation, _, cost = item.partition("=")
        if not operation or not cost.strip().isdigit():
            raise InvalidInput(
                f"invalid --set {item!r}.",
                hint="Use OPERATION=CREDITS, e.g. --set prediction=2.",
            )
        changes[operation.strip()] = int(cost)
    with session() as db:
        costs = seeds.seed_ml_config(db, changes)
    if json_output:
        print_json(costs)
    else:
        print_table(
            "credit cost of each operation", ["operation", "credits"], costs.items()
        )


@app.command("remove-test-data")
def remove_test_data(
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete tenants created with --test and all their rows."""
    from qml_cli.core import seeds

    if not dry_run:
        with session() as db:
            preview = seeds.remove_test_data(db, dry_run=True)
        if preview:
            confirm_or_abort(f"Delete {len(preview)} test tenants and their rows?", yes)
    with session() as db:
        report = seeds.remove_test_data(db, dry_run=dry_run)
    if json_output:
        print_json({"dry_run": dry_run, "removed": report})
        return
    verb = "Would remove" if dry_run else "Removed"
    if not report:
        say("No test tenants found.")
    for item in report:
        rows = ", ".join(
            f"{count} {table}" for table, count in item["rows"].items() if count
        )
        say(f"{verb} tenant {item['tenant']}" + (f" ({rows})" if rows else ""))
