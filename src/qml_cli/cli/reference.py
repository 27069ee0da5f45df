"""Generate the README's command reference and the shell completion scripts.

Run `python -m qml_cli.cli.reference --write` after changing a command; a test
fails while the checked-in copies differ from what this module generates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

START = "<!-- command-reference:start -->"
END = "<!-- command-reference:end -->"
SHELLS = {"bash": "qml.bash", "zsh": "_qml", "fish": "qml.fish"}


def _is_group(command) -> bool:
    return hasattr(command, "list_commands")


def _walk(command, path: list[str]):
    yield path, command
    if _is_group(command):
        ctx = command.make_context(path[-1], [], resilient_parsing=True)
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), [*path, name])


def _option_line(param) -> str | None:
    if param.param_type_name == "argument":
        return None
    if param.hidden if hasattr(param, "hidden") else False:
        return None
    names = ", ".join(f"`{opt}`" for opt in param.opts)
    if param.name in ("install_completion", "show_completion"):
        return None
    help_text = (getattr(param, "help", None) or "").strip()
    default = param.default
    shown = ""
    if not param.is_flag if hasattr(param, "is_flag") else True:
        if default not in (None, (), []) and not callable(default):
            shown = f" (default: `{default}`)"
    return f"  - {names}: {help_text}{shown}"


def command_reference() -> str:
    """Return the Markdown reference of every command, from the Typer app."""
    import typer

    from qml_cli.cli.app import app

    root = typer.main.get_command(app)
    lines = []
    for path, command in _walk(root, ["qml"]):
        if _is_group(command) and len(path) > 1:
            lines.append(f"\n### `{' '.join(path)}`\n")
            lines.append((command.help or "").strip().splitlines()[0])
            continue
        if _is_group(command):
            continue
        arguments = " ".join(
            p.name.upper() if p.required else f"[{p.name.upper()}]"
            for p in command.params
            if p.param_type_name == "argument"
        )
        usage = " ".join(path) + (f" {arguments}" if arguments else "")
        summary = (command.help or "").strip().splitlines()[0] if command.help else ""
        lines.append(f"\n- `{usage}`: {summary}")
        lines += [line for p in command.params if (line := _option_line(p))]
    return "\n".join(lines).strip() + "\n"


def completion_script(shell: str) -> str:
    """Return the completion script for `shell`, as `qml --show-completion` prints it."""
    # NOTE: Typer exposes no public function for the script text; this private one is
    # what its --show-completion option calls (Typer 0.12 to 0.29 at least).
    from typer._completion_shared import get_completion_script

    return get_completion_script(
        prog_name="qml", complete_var="_QML_COMPLETE", shell=shell
    )


def replace_reference(readme: str, reference: str) -> str:
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference}{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--write", action="store_true", help="Update README.md and completions/"
    )
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="Repository root."
    )
    options = parser.parse_args()
    readme_path = options.root / "README.md"
    updated = replace_reference(readme_path.read_text(), command_reference())
    if not options.write:
        sys.stdout.write(updated)
        return
    readme_path.write_text(updated)
    for shell, name in SHELLS.items():
        (options.root / "completions" / name).write_text(completion_script(shell))


if __name__ == "__main__":
    main()
