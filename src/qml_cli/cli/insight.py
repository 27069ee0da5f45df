"""`qml insight`: charged, cached insight runs of a metric and their stored results."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qml_cli.cli.common import JsonOption
from qml_cli.cli.output import print_fields, print_json, print_table, say

app = typer.Typer(
    help="Analyse a metric and show stored insights.", no_args_is_help=True
)

TYPES_HELP = (
    "Comma-separated insight types: trend, seasonality, anomaly, changepoint, "
    "correlation, segmentation, recommendation, prediction, optimization "
    "(default: all)."
)


def _finding_rows(findings: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [f["id"], f["type"], f["title"], round(f["confidence"], 3)] for f in findings
    ]


def _render_run(document: dict[str, Any]) -> None:
    findings = document["findings"]
    chosen = [f for f in findings if f["selected"]]
    absent = [f for f in findings if not f.get("detected", True)]
    hidden = sum(f["low_confidence"] for f in findings)
    origin = (
        "cached result, no charge"
        if document["cached"]
        else (f"{document['credits_charged']} credits charged")
    )
    say(
        f"Insight run {document['run_id']} of "
        f"{document['tenant']}/{document['metric']} ({origin})."
    )
    if chosen:
        print_table(
            "Selected insights",
            ["id", "type", "title", "confidence"],
            _finding_rows(chosen),
        )
        for finding in chosen:
            say(f"[{finding['id']}] {finding['message']}")
    else:
        say("No confident insight was found in the window.")
    for finding in absent:
        say(finding["message"])
    selection = document.get("selection") or {}
    quantum = selection.get("quantum", {})
    say(
        f"Selection: {len(chosen)} of {len(selection.get('candidates', []))} "
        f"candidates by exact enumeration; QAOA {quantum.get('status', 'disabled')}."
    )
    if hidden:
        say(
            f"{hidden} low-confidence findings are stored but not shown; see "
            f"qml insight list {document['tenant']} --all."
        )


@app.command()
def run(
    slug: str,
    metric: str,
    types: Annotated[str | None, typer.Option("--types", help=TYPES_HELP)] = None,
    window: Annotated[
        str,
        typer.Option(
            "--window", help="Span analysed, back from the newest point: 90d, 12w, 48h."
        ),
    ] = "90d",
    max_n: Annotated[
        int, typer.Option("--max", help="Maximum insights selected, 1 to 12.")
    ] = 5,
    json_output: JsonOption = False,
) -> None:
    """Analyse a metric, charging its credits unless the result is cached."""
    from qml_cli.core.insights.runner import run_insights

    document = run_insights(slug, metric, types=types, window=window, max_n=max_n)
    if json_output:
        print_json(document)
    else:
        _render_run(document)


@app.command("list")
def list_command(
    slug: str,
    include_low: Annotated[
        bool, typer.Option("--all", help="Include low-confidence findings.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="Maximum rows.", min=1)] = 50,
    json_output: JsonOption = False,
) -> None:
    """List a tenant's stored insights, newest first."""
    from qml_cli.cli.common import session
    from qml_cli.core.insights.store import list_rows
    from qml_cli.core.tenants import get_tenant

    with session() as db:
        rows = list_rows(db, get_tenant(db, slug), include_low=include_low, limit=limit)
    if json_output:
        print_json(rows)
        return
    print_table(
        f"Insights of {slug}",
        ["id", "run", "metric", "type", "title", "confidence", "selected"],
        [
            [
                r["id"],
                r["run_id"],
                r["metric"],
                r["type"],
                r["title"],
                round(r["confidence"], 3),
                "yes" if r["selected"] else "",
            ]
            for r in rows
        ],
    )


@app.command()
def show(
    insight_id: Annotated[int, typer.Argument(help="Insight or run id.")],
    json_output: JsonOption = False,
) -> None:
    """Show one stored insight, or a whole run by its run id."""
    from qml_cli.cli.common import session
    from qml_cli.core.insights.store import show_row

    with session() as db:
        document = show_row(db, insight_id)
    if json_output:
        print_json(document)
    elif "findings" in document:
        _render_run({**document, "cached": False})
    else:
        print_fields(
            f"Insight {document['id']}",
            {
                "run": document["run_id"],
                "tenant": document["tenant"],
                "metric": document["metric"],
                "type": document["type"],
                "title": document["title"],
                "confidence": round(document["confidence"], 4),
                "low confidence": document["low_confidence"],
                "selected": document["selected"],
                "created": document["created_at"],
            },
        )
        say(document["message"])
        print_fields(
            "Evidence",
            {
                k: v
                for k, v in document["evidence"].items()
                if not isinstance(v, list | dict)
            },
        )
