"""The `qml` root command: global options, command groups and error handling."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from qml_cli import __version__
from qml_cli.errors import EXIT_FAILED, QmlError

# Command groups in help order: (module under qml_cli.cli, command name).
GROUPS = (
    ("config", "config"),
    ("db", "db"),
    ("seed", "seed"),
    ("tenants", "tenants"),
    ("credits", "credits"),
    ("data", "data"),
    ("predict", "predict"),
    ("insight", "insight"),
    ("quantum", "quantum"),
    ("jobs", None),  # logs, backup, cron, scheduler: registers several groups
    ("ops", None),  # health, deploy, rollback
    ("demo", None),
)


HELP_ORDER = (
    "demo",
    "config",
    "db",
    "seed",
    "tenants",
    "credits",
    "data",
    "predict",
    "insight",
    "quantum",
    "logs",
    "backup",
    "cron",
    "scheduler",
    "health",
    "deploy",
    "rollback",
)


class QmlGroup(TyperGroup):
    """Root group that turns a `QmlError` into its message and exit code."""

    def invoke(self, ctx: typer.Context):
        arguments = [
            *getattr(ctx, "protected_args", getattr(ctx, "_protected_args", [])),
            *ctx.args,
        ]
        try:
            try:
                return super().invoke(ctx)
            except Exception as exc:  # map well-known failures to qml errors
                mapped = _as_qml_error(exc)
                if mapped is None:
                    raise
                raise mapped from exc
        except QmlError as exc:
            from qml_cli.cli.output import error, print_json

            error(str(exc))
            if "--json" in arguments:  # scripts parsing stdout get the error too
                print_json({"error": str(exc), "exit_code": exc.exit_code})
            logging.getLogger("qml").debug("command failed", exc_info=exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            from qml_cli.cli.output import error

            error("interrupted")
            raise typer.Exit(130) from None

    def list_commands(self, ctx: typer.Context) -> list[str]:
        # Typer registers single commands before groups; list them in HELP_ORDER.
        def rank(name: str) -> int:
            return HELP_ORDER.index(name) if name in HELP_ORDER else len(HELP_ORDER)

        return sorted(self.commands, key=rank)


def _as_qml_error(exc: Exception) -> QmlError | None:
    """Return the qml error for a driver error, an out-of-range value or a request
    too large for memory, or None for anything else."""
    from sqlalchemy.exc import DBAPIError

    from qml_cli.errors import InvalidInput

    if isinstance(exc, DBAPIError):
        from qml_cli.core.db import get_engine, translate_error

        try:
            mapped = translate_error(exc, get_engine())
        except QmlError as error:
            return error
        return mapped if isinstance(mapped, QmlError) else None
    if isinstance(exc, OverflowError):
        return InvalidInput(
            f"a value is out of range: {exc}.", hint="Use a smaller number."
        )
    if isinstance(exc, RecursionError):
        return InvalidInput("the input is nested too deeply to read.")
    if isinstance(exc, MemoryError):
        return InvalidInput(
            "the request needs more memory than this machine has.",
            hint="Use a smaller input.",
        )
    return None


app = typer.Typer(
    cls=QmlGroup,
    name="qml",
    help="Operations toolkit for the Quantum ML service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qml {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="Read settings from this dotenv file instead of ./.env.",
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Operations toolkit for the Quantum ML service."""
    from qml_cli.core import logs, settings

    settings.configure(env_file)
    logs.setup_from_settings()


def _register() -> None:
    for module_name, command_name in GROUPS:
        try:
            module = importlib.import_module(f"qml_cli.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"qml_cli.cli.{module_name}":
                raise
            continue
        if command_name is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=command_name)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="qml")
    except QmlError as exc:  # raised outside a command, e.g. while parsing
        from qml_cli.cli.output import error

        error(str(exc))
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    except (
        Exception
    ) as exc:  # an unexpected error: print its type and message, log the traceback
        from qml_cli.cli.output import error

        logging.getLogger("qml").error("unexpected error", exc_info=exc)
        error(
            f"unexpected {type(exc).__name__}: {exc}. Run with LOG_LEVEL=DEBUG for details."
        )
        raise SystemExit(EXIT_FAILED) from None
