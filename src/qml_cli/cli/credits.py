"""`qml credits`: balances, grants, consumption, refunds, resets and the audit."""

from __future__ import annotations

from typing import Annotated

import typer

from qml_cli.cli.common import DryRunOption, JsonOption, session
from qml_cli.cli.output import error, print_fields, print_json, print_table, say

app = typer.Typer(
    help="ML credits: balances, grants, consumption and resets.", no_args_is_help=True
)

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Key that makes a retry grant once. Without it, one is derived from "
        "the arguments and the current minute, so a retry in a later minute grants "
        "again.",
    ),
]


@app.command()
def status(slug: str, json_output: JsonOption = False) -> None:
    """Show allowance, used, available credits, period end and plan."""
    from qml_cli.core import credit_reports, tenants

    with session() as db:
        document = credit_reports.status(db, tenants.get_tenant(db, slug))
    if json_output:
        print_json(document)
        return
    buckets = document.pop("grant_buckets")
    scheduled = document.pop("scheduled_grants")
    print_fields(f"credits of {slug}", document)
    if buckets:
        print_table(
            "grants",
            ["grant", "remaining", "priority", "expires", "reason"],
            [
                (
                    b["grant_id"],
                    b["remaining"],
                    b["priority"],
                    b["expires_at"].date().isoformat() if b["expires_at"] else "never",
                    b["reason"],
                )
                for b in buckets
            ],
        )
    if scheduled:
        print_table(
            "scheduled grants",
            ["grant", "amount", "effective", "reason"],
            [
                (
                    b["grant_id"],
                    b["remaining"],
                    b["effective_at"].isoformat(),
                    b["reason"],
                )
                for b in scheduled
            ],
        )


@app.command()
def grant(
    slug: str,
    amount: Annotated[int, typer.Argument(help="Credits to add (1 or more).")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why the credits are granted.")
    ],
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="Expiry date or time (ISO 8601); end of that day in the tenant's "
            "time zone for a date.",
        ),
    ] = None,
    priority: Annotated[
        int,
        typer.Option("--priority", help="Burn order among grants: lower burns first."),
    ] = 100,
    key: KeyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a top-up or bonus grant that survives resets until it expires."""
    from qml_cli.core import clock, credits, tenants

    now = clock.now()
    with session() as db:
        tenant = tenants.get_tenant(db, slug)
        expires_at = _expiry(expires, tenant.timezone) if expires else None
        key = key or credits.derive_grant_key(
            slug, amount, reason, expires_at, priority, now
        )
        result = credits.grant(
            db,
            tenant,
            amount,
            reason=reason,
            key=key,
            expires_at=expires_at,
            priority=priority,
            now=now,
        )
    if json_output:
        print_json(result)
    elif result["replayed"]:
        say(f"Grant already recorded with key {key}; nothing added.")
    else:
        say(
            f"Granted {amount} credits to {slug} (grant {result['grant_id']}, "
            f"idempotency key {key})."
        )


def _expiry(text: str, tz_name: str):
    import datetime as dt

    from qml_cli.core import clock

    try:  # a date (2027-03-31 or 20270331): the grant lasts to the end of that day
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        day = None
    if day is None:
        return clock.parse_instant(text, "--expires")
    try:
        local = dt.datetime.combine(
            day + dt.timedelta(days=1), dt.time(), tzinfo=clock.zone(tz_name)
        )
        return local.astimezone(dt.UTC)
    except OverflowError:
        from qml_cli.errors import InvalidInput

        raise InvalidInput(
            f"invalid --expires {text!r}: the date is out of range.",
            hint="Use a date before the year 9999.",
        ) from None


@app.command()
def consume(
    slug: str,
    amount: Annotated[int, typer.Argument(help="Credits to charge (1 or more).")],
    operation: Annotated[str, typer.Option("--operation", help="Operation charged.")],
    key: Annotated[
        str,
        typer.Option("--idempotency-key", help="Key that makes a retry charge once."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Charge credits once per idempotency key; exit 3 when not enough are left."""
    from qml_cli.core import credits, tenants

    with session() as db:
        charge = credits.consume(
            db, tenants.get_tenant(db, slug), amount, operation=operation, key=key
        )
    if json_output:
        print_json(charge.to_dict())
    elif charge.replayed:
        say(
            f"Already charged with key {key}: {charge.charged} credits; "
            "nothing charged now."
        )
    elif not charge.credits_enabled:
        say(f"Recorded {operation} for {slug} at cost 0: ML_CREDITS_ENABLED is false.")
    else:
        say(f"Charged {charge.charged} credits to {slug}; {charge.balance_after} left.")


@app.command()
def refund(
    slug: str,
    key: Annotated[
        str, typer.Option("--idempotency-key", help="Key of the consumption to refund.")
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why it is refunded.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Return exactly what one consumption took, to the buckets it came from, once."""
    from qml_cli.core import credits, tenants

    with session() as db:
        result = credits.refund(db, tenants.get_tenant(db, slug), key, reason=reason)
    if json_output:
        print_json(result)
    elif result["replayed"]:
        say(f"Already refunded: {result['refunded']} credits; nothing changed.")
    else:
        lost = result["charged"] - result["refunded"]
        note = f" ({lost} from expired buckets not restored)" if lost else ""
        say(f"Refunded {result['refunded']} credits to {slug}{note}.")


@app.command()
def history(
    slug: str,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO date or time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO date or time.")
    ] = None,
    operation: Annotated[
        str | None,
        typer.Option(
            "--operation", help="Only rows of this operation, e.g. prediction."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show (1-10000).")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Rows to skip.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List the tenant's ledger rows, newest first."""
    from qml_cli.core import clock, credit_reports, tenants

    start = clock.parse_instant(since, "--since") if since else None
    end = clock.parse_instant(until, "--until") if until else None
    with session() as db:
        rows = credit_reports.history(
            db,
            tenants.get_tenant(db, slug),
            since=start,
            until=end,
            operation=operation,
            limit=limit,
            offset=offset,
        )
    if json_output:
        print_json(rows)
        return
    print_table(
        f"ledger of {slug}",
        ["id", "time", "kind", "operation", "credits", "balance", "key"],
        [
            (
                r["id"],
                r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                r["kind"],
                r["operation"],
                r["credits"],
                r["balance_after"],
                r["idempotency_key"],
            )
            for r in rows
        ],
    )


@app.command()
def stats(
    slug: str,
    period: Annotated[
        str, typer.Option("--period", help="day, week or month.")
    ] = "month",
    json_output: JsonOption = False,
) -> None:
    """Uses, credits, success rate and mean processing time by operation."""
    from qml_cli.core import credit_reports, tenants

    with session() as db:
        report = credit_reports.stats(db, tenants.get_tenant(db, slug), period=period)
    if json_output:
        print_json(report)
        return
    print_table(
        f"usage of {slug} since {report['since']:%Y-%m-%d %H:%M}",
        ["operation", "uses", "failures", "credits", "success rate", "mean ms"],
        [
            (
                o["operation"],
                o["uses"],
                o["failures"],
                o["credits"],
                f"{o['success_rate']:.0%}" if o["success_rate"] is not None else "",
                f"{o['mean_processing_time_ms']:.0f}"
                if o["mean_processing_time_ms"] is not None
                else "",
            )
            for o in report["operations"]
        ],
    )


@app.command()
def audit(json_output: JsonOption = False) -> None:
    """Recompute every balance from the ledger; exit 1 on any mismatch."""
    from qml_cli.core import credit_reports

    with session() as db:
        report = credit_reports.audit(db)
    if json_output:
        print_json(report)
    elif report["ok"]:
        say(
            f"Audit clean: {report['tenants']} tenants, "
            f"{report['ledger_rows']} ledger rows."
        )
    else:
        print_table(
            "audit mismatches",
            ["tenant", "check", "ledger", "cached"],
            [
                (m["tenant"], m["check"], m.get("ledger"), m.get("cached"))
                for m in report["mismatches"]
            ],
        )
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def alerts(json_output: JsonOption = False) -> None:
    """List tenants past 70% (warning), 90% (critical) or with nothing left (empty)."""
    from qml_cli.core import credit_reports
    from qml_cli.core.db import session_scope

    report = credit_reports.alerts(session_scope)
    if json_output:
        print_json(report)
        return
    if not report:
        say("No tenant is past a credit threshold.")
        return
    print_table(
        "credit alerts",
        ["tenant", "state", "used", "allowance", "available", "new"],
        [
            (
                a["tenant"],
                a["state"],
                a["used"],
                a["allowance"],
                a["available"],
                ",".join(a["new_crossings"]),
            )
            for a in report
        ],
    )


@app.command("reset-monthly")
def reset_monthly(
    dry_run: DryRunOption = False,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to wait for a running reset before exiting 5 (default: 0).",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Reset tenants whose period ended (safe to run hourly, twice, or concurrently)."""
    from qml_cli.core import credits
    from qml_cli.core.db import session_scope
    from qml_cli.core.jobs import run_job

    if dry_run:
        report = credits.reset_monthly(session_scope, dry_run=True)
    else:
        report = run_job(
            "credits-reset-monthly",
            lambda: credits.reset_monthly(session_scope),
            wait_s=wait,
        )
    if json_output:
        print_json(report)
    elif not report["enabled"]:
        say(
            f"MONTHLY_RESET_ENABLED is false: {report['due']} tenants due, "
            "nothing changed."
        )
    elif dry_run:
        periods = sum(item["periods"] for item in report["resets"])
        say(f"Would reset {report['due']} tenants ({periods} periods).")
    else:
        for item in report["resets"]:
            say(
                f"Reset {item['tenant']} for the period from "
                f"{item['period_start']:%Y-%m-%d}: {item['allowance']} credits, "
                f"{item['expired']} expired."
            )
        say(f"{len(report['resets'])} resets written.")
    for item in report.get("failed", []):
        error(f"reset of {item['tenant']} failed: {item['error']}")
    if report.get("failed"):
        raise typer.Exit(1)


@app.command()
def expire(json_output: JsonOption = False) -> None:
    """End expired grants and release timed-out holds, with ledger rows."""
    from qml_cli.core import credits
    from qml_cli.core.db import session_scope

    totals = credits.expire_all(session_scope)
    if json_output:
        print_json(totals)
    else:
        say(
            f"Credited {totals['grants_activated']} scheduled grants, expired "
            f"{totals['grants_expired']} grants and released "
            f"{totals['holds_released']} holds."
        )
