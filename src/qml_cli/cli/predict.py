"""`qml predict`: scheduled forecasts and the job that runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qml_cli.cli.common import JsonOption, YesOption, confirm_or_abort, session
from qml_cli.cli.output import console, print_fields, print_json, print_table, say

app = typer.Typer(
    help="Create auto-predictions and run them on schedule.", no_args_is_help=True
)

RefArgument = Annotated[str, typer.Argument(help="Prediction id, or SLUG/NAME.")]


@app.command()
def create(
    slug: str,
    name: str,
    metric: Annotated[str, typer.Option("--metric", help="Metric to forecast.")],
    prediction_type: Annotated[
        str,
        typer.Option(
            "--type",
            help="sales_forecast, demand_forecast, cash_flow, performance_analysis "
            "or anomaly_detection.",
        ),
    ] = "sales_forecast",
    horizon: Annotated[
        int, typer.Option("--horizon", help="Periods ahead to forecast.")
    ] = 30,
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule", help="Cron expression, in the prediction's time zone."
        ),
    ] = "0 9 * * *",
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", help="IANA time zone of the schedule (default: the tenant's)."
        ),
    ] = None,
    level: Annotated[
        list[float] | None,
        typer.Option(
            "--level", help="Prediction interval coverage in percent (repeatable)."
        ),
    ] = None,
    missing: Annotated[
        str | None,
        typer.Option(
            "--missing", help="Gaps: zero, interpolate or skip (default by type)."
        ),
    ] = None,
    start: Annotated[
        str,
        typer.Option(
            "--start", help="First run: next (the next cron slot) or now (due at once)."
        ),
    ] = "next",
    json_output: JsonOption = False,
) -> None:
    """Create a scheduled prediction of a tenant's metric."""
    from qml_cli.core import predictions, tenants

    with session() as db:
        prediction = predictions.create(
            db,
            tenants.get_tenant(db, slug),
            name,
            metric=metric,
            prediction_type=prediction_type,
            horizon=horizon,
            schedule=schedule,
            timezone=timezone,
            levels=level,
            missing=missing,
            start=start,
        )
        document = predictions.describe(db, prediction)
    if json_output:
        print_json(document)
    else:
        say(
            f"Created prediction {document['id']} ({slug}/{name}); next run "
            f"{document['next_run_at']:%Y-%m-%d %H:%M} UTC."
        )


@app.command("list")
def list_(
    slug: Annotated[str | None, typer.Argument(help="Only this tenant.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List predictions with their schedule and last run."""
    from qml_cli.core import predictions

    with session(readonly=True) as db:
        items = predictions.list_predictions(db, slug)
    if json_output:
        print_json(items)
        return
    print_table(
        "predictions",
        [
            "id",
            "tenant",
            "name",
            "type",
            "metric",
            "schedule",
            "next run (UTC)",
            "runs",
            "active",
        ],
        [
            (
                p["id"],
                p["tenant"],
                p["name"],
                p["type"],
                p["metric"],
                p["schedule"],
                f"{p['next_run_at']:%Y-%m-%d %H:%M}",
                f"{p['successes']}/{p['runs']}",
                "yes" if p["active"] else "no",
            )
            for p in items
        ],
    )


@app.command()
def show(
    reference: RefArgument,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Write the history and forecast as a PNG or SVG file."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show the latest result: model, cross-validation error and intervals."""
    from qml_cli.core import metrics, predictions

    with session(readonly=True) as db:
        prediction = predictions.resolve(db, reference)
        document = predictions.describe(db, prediction)
        document["result"] = prediction.last_result
        document["recent_runs"] = predictions.latest_runs(db, prediction)
        history = None
        if plot is not None:
            from qml_cli.core.tenants import get_tenant

            history = metrics.load_series(
                db, get_tenant(db, document["tenant"]), prediction.metric
            )
    if plot is not None:
        _write_plot(plot, history, document)
    if json_output:
        print_json(document)
        return
    _render(document)
    if plot is not None:
        say(f"Plot written to {plot}.")


def _write_plot(path: Path, history, document) -> None:
    from qml_cli.errors import InvalidInput

    if document["result"] is None or "point" not in document["result"]:
        raise InvalidInput(
            f"prediction {document['id']} has no forecast to plot yet.",
            hint=f"Run it with: qml predict run --id {document['id']}",
        )
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInput(
            f"invalid plot file {str(path)!r}.", hint="Use a .png or .svg name."
        )
    from qml_cli.core.forecasting.plot import plot_forecast

    plot_forecast(history[0], history[1], document["result"], path)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _render(document) -> None:
    result = document.pop("result")
    runs = document.pop("recent_runs")
    print_fields(f"prediction {document['id']}", document)
    if result is None:
        say("No successful run yet.")
    elif "point" in result:
        say(f"Model: {result['model']}. {result.get('reason', '')}")
        cv = result.get("cv_error") or {}
        if cv:
            say(
                "Cross-validation error: "
                + ", ".join(
                    f"{k} {v:.3f}" for k, v in cv.items() if isinstance(v, int | float)
                )
            )
        levels = list(result.get("intervals", {}))
        columns = ["date", "forecast"] + [
            f"{side} {lvl}%" for lvl in levels for side in ("lower", "upper")
        ]
        rows = []
        for index, day in enumerate(result["dates"]):
            row = [day, _number(result["point"][index])]
            for lvl in levels:
                row += [
                    _number(result["intervals"][lvl]["lower"][index]),
                    _number(result["intervals"][lvl]["upper"][index]),
                ]
            rows.append(row)
        print_table("forecast", columns, rows)
    else:
        console.print_json(data=result)
    if runs:
        print_table(
            "recent runs",
            ["run", "status", "reason", "model", "ms", "credits"],
            [
                (
                    r["id"],
                    r["status"],
                    r["reason"] or r["error"] or "",
                    r["model"] or "",
                    f"{r['processing_time_ms']:.0f}" if r["processing_time_ms"] else "",
                    r["credits_charged"],
                )
                for r in runs
            ],
        )


@app.command()
def enable(reference: RefArgument) -> None:
    """Enable a prediction; its next run is the next slot from now."""
    _set_active(reference, True)


@app.command()
def disable(reference: RefArgument) -> None:
    """Disable a prediction; `predict run --due` skips it."""
    _set_active(reference, False)


def _set_active(reference: str, active: bool) -> None:
    from qml_cli.core import predictions

    with session() as db:
        prediction = predictions.resolve(db, reference)
        predictions.set_active(db, prediction, active)
    say(f"{'Enabled' if active else 'Disabled'} prediction {prediction.id}.")


@app.command()
def delete(reference: RefArgument, yes: YesOption = False) -> None:
    """Delete a prediction and its run history."""
    from qml_cli.core import predictions

    with session() as db:
        prediction = predictions.resolve(db, reference)
        confirm_or_abort(
            f"Delete prediction {prediction.id} ({prediction.name}) and its runs?", yes
        )
        db.delete(prediction)
    say(f"Deleted prediction {prediction.id}.")


@app.command()
def run(
    due: Annotated[
        bool, typer.Option("--due", help="Run every prediction that is due.")
    ] = False,
    prediction_id: Annotated[
        int | None, typer.Option("--id", help="Run this one now.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            help="Worker processes (default ML_MAX_CONCURRENT).",
        ),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to wait for this worker's previous run before exiting 5.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Run due predictions (for cron) or one prediction now; exit 1 if any failed.

    Overlapping `--due` runs of one worker (QML_WORKER_NAME, default the host name)
    exit 5; workers on other hosts share the due work.
    """
    from qml_cli.core import prediction_runs
    from qml_cli.errors import InvalidInput

    if due == (prediction_id is not None):
        raise InvalidInput(
            "pass exactly one of --due and --id.", hint="e.g. qml predict run --due"
        )
    if prediction_id is not None:
        outcome = prediction_runs.run_one(prediction_id)
        summary = prediction_runs._summary([outcome])
    else:
        from qml_cli.core.jobs import run_job

        name = f"predict-run-due@{prediction_runs.worker_identity()}"
        summary = run_job(name, lambda: _run_due(workers, json_output), wait_s=wait)
    if json_output:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary["failed"]:
        raise typer.Exit(1)


def _run_due(workers: int | None, quiet: bool) -> dict:
    import sys

    from rich.progress import Progress

    from qml_cli.core import clock, prediction_runs

    now = clock.now()
    if quiet or not sys.stdout.isatty():
        return prediction_runs.run_due(now=now, workers=workers)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("predictions", total=prediction_runs.count_due(now))
        return prediction_runs.run_due(
            now=now, workers=workers, progress=lambda _outcome: bar.advance(task)
        )


def _credits(count: int) -> str:
    return "1 credit" if count == 1 else f"{count} credits"


def _print_summary(summary: dict) -> None:
    if not summary["enabled"]:
        say("AUTO_PREDICTIONS_ENABLED is false: nothing ran.")
        return
    for item in summary["predictions"]:
        detail = item["model"] or item["reason"] or item["error"] or ""
        say(
            f"  {item['prediction_id']:>5} {item['tenant']}/{item['name']}: {item['status']}"
            f" {detail} ({_credits(item['credits'])})"
        )
    reasons = ", ".join(f"{k} {v}" for k, v in summary["skipped_reasons"].items())
    skipped = f"skipped {summary['skipped']}" + (f" ({reasons})" if reasons else "")
    say(
        f"Ran {summary['run']}, failed {summary['failed']}, {skipped}; "
        f"{_credits(summary['credits_charged'])} charged."
    )
    if summary.get("still_due"):
        say(
            f"{summary['still_due']} due predictions are claimed by other workers or "
            "by runs that have not finished; their claims expire after ML_TIMEOUT."
        )
