"""Typer command groups: parse options, call `qml_cli.core`, render the result."""
