"""Option types and small helpers shared by the command modules."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of a table.")
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print what would change and change nothing.")
]


def session(*, readonly: bool = False):
    """Open a transaction on the configured database (commit on success);
    `readonly` ones do not wait for or block SQLite writers."""
    from qml_cli.core.db import session_scope

    return session_scope(readonly=readonly)


def confirm_or_abort(question: str, yes: bool) -> None:
    """Ask `question` on a terminal; without a terminal, require --yes (exit 2)."""
    import sys

    from qml_cli.errors import InvalidInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(
            "refusing to proceed without confirmation.",
            hint="Pass --yes to confirm when not on a terminal.",
        )
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)
