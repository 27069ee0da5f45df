"""`qml data`: import and inspect metric time series."""

from __future__ import annotations

from typing import Annotated

import typer

from qml_cli.cli.common import JsonOption, session
from qml_cli.cli.output import print_json, print_table, say

app = typer.Typer(help="Import and inspect metric time series.", no_args_is_help=True)


@app.command("import")
def import_(
    slug: str,
    metric: Annotated[str, typer.Argument(help="Metric name, e.g. daily_sales.")],
    file: Annotated[
        str, typer.Argument(help="CSV file with a header row, or - for stdin.")
    ],
    time_column: Annotated[
        str, typer.Option("--time-column", help="Column with ISO dates or date-times.")
    ] = "date",
    value_column: Annotated[
        str, typer.Option("--value-column", help="Column with the numbers.")
    ] = "value",
    on_duplicate: Annotated[
        str,
        typer.Option(
            "--on-duplicate", help="Repeated times in the file: error, sum or last."
        ),
    ] = "error",
    json_output: JsonOption = False,
) -> None:
    """Load a CSV into the metric; one invalid row rejects the whole file."""
    from qml_cli.core import metrics, tenants

    metrics.validate_metric_name(metric)
    with session(readonly=True) as db:
        tenants.get_tenant(db, slug)
    parsed = metrics.read_csv(
        file,
        time_column=time_column,
        value_column=value_column,
        on_duplicate=on_duplicate,
    )
    with session() as db:
        report = metrics.store_points(db, tenants.get_tenant(db, slug), metric, parsed)
    if json_output:
        print_json(report)
    else:
        say(
            f"Imported {report['points']} points into {slug}/{metric} "
            f"({report['inserted']} new, {report['replaced']} replaced), "
            f"{report['first']:%Y-%m-%d} to {report['last']:%Y-%m-%d}."
        )


@app.command("list")
def list_(slug: str, json_output: JsonOption = False) -> None:
    """List the tenant's metrics with point counts and time ranges."""
    from qml_cli.core import metrics, tenants

    with session(readonly=True) as db:
        items = metrics.list_metrics(db, tenants.get_tenant(db, slug))
    if json_output:
        print_json(items)
    else:
        print_table(
            f"metrics of {slug}",
            ["metric", "points", "first", "last"],
            [
                (
                    i["metric"],
                    i["points"],
                    f"{i['first']:%Y-%m-%d}",
                    f"{i['last']:%Y-%m-%d}",
                )
                for i in items
            ],
        )


@app.command()
def show(
    slug: str,
    metric: str,
    tail: Annotated[
        int, typer.Option("--tail", min=1, max=100000, help="Latest points to show.")
    ] = 20,
    json_output: JsonOption = False,
) -> None:
    """Show the latest points of a metric."""
    from qml_cli.core import metrics, tenants

    with session(readonly=True) as db:
        times, values = metrics.load_series(db, tenants.get_tenant(db, slug), metric)
    points = [
        {"ts": t, "value": v}
        for t, v in zip(times[-tail:], values[-tail:], strict=True)
    ]
    if json_output:
        print_json(points)
    else:
        print_table(
            f"{slug}/{metric} (last {len(points)} of {len(times)})",
            ["time", "value"],
            [(p["ts"].isoformat(), p["value"]) for p in points],
        )
