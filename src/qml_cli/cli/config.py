"""`qml config`: show and check the settings."""

from __future__ import annotations

import typer

from qml_cli.cli.common import JsonOption
from qml_cli.cli.output import error, print_json, print_table, say

app = typer.Typer(help="Show and check the configuration.", no_args_is_help=True)


@app.command()
def show(json_output: JsonOption = False) -> None:
    """Print each setting, its value (secrets masked) and where it came from."""
    import os

    from qml_cli.core.config_check import display_value
    from qml_cli.core.settings import SPECS, load_lenient

    settings = load_lenient()
    invalid = {problem.split(":", 1)[0] for problem in settings.problems}
    rows = []
    for spec in SPECS:
        value = settings.values[spec.name]
        shown = display_value(spec.name, value)
        if spec.name in invalid:
            shown = "(invalid, see below)"
        if spec.name == "DATABASE_URL" and value is None:
            shown = f"(embedded) {settings.database_url}"
        rows.append(
            {
                "name": spec.name,
                "value": shown,
                "source": settings.sources[spec.name],
                "help": spec.help,
                "used_by": spec.used_by or "nothing yet",
            }
        )
    if os.environ.get("QML_FAKE_NOW"):
        rows.append(
            {
                "name": "QML_FAKE_NOW",
                "value": os.environ["QML_FAKE_NOW"],
                "source": "environment",
                "help": "fixed current time (testing only)",
                "used_by": "every command",
            }
        )
    if json_output:
        print_json(rows)
    else:
        print_table(
            "settings",
            ["setting", "value", "source", "used by"],
            [(r["name"], r["value"], r["source"], r["used_by"]) for r in rows],
        )
    if settings.problems:
        for problem in settings.problems:
            error(f"invalid setting {problem}")
        raise typer.Exit(2)


@app.command()
def check(json_output: JsonOption = False) -> None:
    """Report every configuration problem at once; exit 1 if there is an error."""
    from qml_cli.core.config_check import Finding
    from qml_cli.core.config_check import check as run_check
    from qml_cli.core.settings import load_lenient

    settings = load_lenient()
    findings = [
        Finding(name, "error", f"is invalid: {reason.strip()}")
        for name, _, reason in (p.partition(":") for p in settings.problems)
    ]
    findings += run_check(settings)
    errors = [f for f in findings if f.level == "error"]
    if json_output:
        print_json({"ok": not errors, "findings": [f.__dict__ for f in findings]})
    elif not findings:
        say("Configuration OK.")
    else:
        for finding in findings:
            say(f"{finding.level}: {finding.setting} {finding.message}")
        if not errors:
            say("Configuration OK, with the notes above.")
    if errors:
        raise typer.Exit(1)
