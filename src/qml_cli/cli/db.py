"""`qml db`: migrations and schema checks."""

from __future__ import annotations

from typing import Annotated

import typer

from qml_cli.cli.common import JsonOption, YesOption, confirm_or_abort
from qml_cli.cli.output import print_json, print_table, say

app = typer.Typer(help="Migrate and check the database schema.", no_args_is_help=True)


@app.command()
def migrate(
    to: Annotated[
        str, typer.Option("--to", help="Target revision (default: head).")
    ] = "head",
) -> None:
    """Upgrade the schema to the latest revision (or --to REV)."""
    from qml_cli.core import migrate as core
    from qml_cli.core.db import get_engine, mask_url

    before, after = core.upgrade(to)
    url = mask_url(str(get_engine().url))
    if before == after:
        say(f"Database {url} already at revision {after}.")
    else:
        say(f"Migrated {url} from {before or 'base'} to {after}.")


@app.command()
def downgrade(
    to: Annotated[
        str, typer.Option("--to", help="Target revision, or 'base' for empty.")
    ],
    yes: YesOption = False,
) -> None:
    """Downgrade the schema to --to REV; tables above it are dropped."""
    from qml_cli.core import migrate as core

    current = core.current_revision()
    confirm_or_abort(
        f"Downgrade from {current or 'base'} to {to}, dropping newer tables?", yes
    )
    before, after = core.downgrade(to)
    say(f"Downgraded from {before or 'base'} to {after or 'base'}.")


@app.command()
def current(json_output: JsonOption = False) -> None:
    """Print the schema revision of the database."""
    from qml_cli.core import migrate as core
    from qml_cli.core.db import get_engine, mask_url

    revision = core.current_revision()
    head = core.head_revision()
    document = {
        "url": mask_url(str(get_engine().url)),
        "revision": revision,
        "head": head,
        "at_head": revision == head,
    }
    if json_output:
        print_json(document)
    else:
        say(
            f"{revision or 'base'}{' (head)' if revision == head else f' (head is {head})'}"
        )


@app.command()
def history(json_output: JsonOption = False) -> None:
    """List the schema revisions from base to head."""
    from qml_cli.core import migrate as core

    items = core.revisions()
    if json_output:
        print_json(items)
    else:
        print_table(
            "revisions",
            ["revision", "description"],
            [(i["revision"], i["description"]) for i in items],
        )


@app.command()
def check(
    retry: Annotated[
        int,
        typer.Option(
            "--retry",
            min=0,
            max=1000,
            help="Retries while the database is unreachable.",
        ),
    ] = 0,
    retry_delay: Annotated[
        float,
        typer.Option(
            "--retry-delay", min=0.0, max=3600.0, help="Seconds between retries."
        ),
    ] = 2.0,
    json_output: JsonOption = False,
) -> None:
    """Exit 0 at head, 1 when migrations are pending, 4 when unreachable."""
    from qml_cli.core import migrate as core

    status = core.check(retry, retry_delay)
    if json_output:
        print_json(
            {
                "url": status.url,
                "revision": status.current,
                "head": status.head,
                "at_head": True,
            }
        )
    else:
        say(f"Database {status.url} at head ({status.head}).")


@app.command()
def verify(json_output: JsonOption = False) -> None:
    """Check that tables, indexes and seeds are present; exit 1 listing what is missing."""
    from qml_cli.core import migrate as core

    report = core.verify()
    if json_output:
        print_json(report)
    elif report["ok"]:
        say(
            f"Schema complete at revision {report['revision']}: tables, indexes and seeds "
            "present."
        )
    else:
        say("Missing:")
        for item in report["missing"]:
            say(f"  - {item}")
    if not report["ok"]:
        raise typer.Exit(1)
