"""The README's command reference and completions/ match the commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from qml_cli.cli import reference

ROOT = Path(__file__).resolve().parent.parent
FIX = "Regenerate with: python -m qml_cli.cli.reference --write"


def test_readme_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    expected = reference.replace_reference(readme, reference.command_reference())
    assert readme == expected, FIX


@pytest.mark.parametrize(("shell", "name"), sorted(reference.SHELLS.items()))
def test_completion_script_is_current(shell, name):
    stored = (ROOT / "completions" / name).read_text()
    assert stored == reference.completion_script(shell), FIX


def test_every_command_has_help():
    import typer

    from qml_cli.cli.app import app

    root = typer.main.get_command(app)
    missing = [
        " ".join(path)
        for path, command in reference._walk(root, ["qml"])
        if not (command.help or "").strip()
    ]
    assert missing == []
