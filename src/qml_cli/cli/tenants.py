"""`qml tenants`: create, list, show, disable, enable and change plans."""

from __future__ import annotations

from typing import Annotated

import typer

from qml_cli.cli.common import JsonOption, session
from qml_cli.cli.output import print_fields, print_json, print_table, say

app = typer.Typer(help="Manage tenants and their plans.", no_args_is_help=True)


@app.command()
def create(
    slug: Annotated[str, typer.Argument(help="Lowercase letters, digits and hyphens.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    plan: Annotated[str | None, typer.Option(
        "--plan", help="Plan name (default: ML_DEFAULT_PLAN).")] = None,
    timezone: Annotated[str, typer.Option(
        "--timezone", help="IANA time zone of the tenant's credit periods.")] = "UTC",
    test: Annotated[bool, typer.Option(
        "--test", help="Mark as test data for `qml seed remove-test-data`.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Create a tenant; its credit account opens with the plan's monthly allowance."""
    from qml_cli.core import tenants
    from qml_cli.core.settings import get_settings

    with session() as db:
        tenant = tenants.create_tenant(db, slug, name=name,
                                       plan_name=plan or get_settings().ml_default_plan,
                                       timezone=timezone, is_test=test)
        document = tenants.describe(db, tenant)
    if json_output:
        print_json(document)
    else:
        say(f"Created tenant {slug} on plan {document['plan']} ({document['timezone']}).")


@app.command("list")
def list_(json_output: JsonOption = False) -> None:
    """List tenants with their plan and status."""
    from qml_cli.core import tenants

    with session() as db:
        items = tenants.list_tenants(db)
    if json_output:
        print_json(items)
    else:
        print_table("tenants", ["slug", "name", "plan", "timezone", "status", "test"],
                    [(t["slug"], t["name"], t["plan"], t["timezone"], t["status"],
                      "yes" if t["test"] else "") for t in items])


@app.command()
def show(slug: str, json_output: JsonOption = False) -> None:
    """Show one tenant with its credit status."""
    from qml_cli.core import credit_reports, tenants

    with session() as db:
        tenant = tenants.get_tenant(db, slug)
        document = tenants.describe(db, tenant)
        document["credits"] = credit_reports.status(db, tenant)
    if json_output:
        print_json(document)
    else:
        credits = document.pop("credits")
        document["available credits"] = credits["available"]
        print_fields(f"tenant {slug}", document)


@app.command()
def disable(slug: str) -> None:
    """Disable a tenant: its predictions and charges stop until enabled."""
    from qml_cli.core import tenants

    with session() as db:
        tenants.set_status(db, slug, "disabled")
    say(f"Disabled tenant {slug}.")


@app.command()
def enable(slug: str) -> None:
    """Enable a disabled tenant."""
    from qml_cli.core import tenants

    with session() as db:
        tenants.set_status(db, slug, "active")
    say(f"Enabled tenant {slug}.")


@app.command("set-plan")
def set_plan(
    slug: str,
    plan: str,
    effective: Annotated[str, typer.Option(
        "--effective", help="now, or next-period to switch at the next reset.")] = "now",
    json_output: JsonOption = False,
) -> None:
    """Change a tenant's plan now or from the next period."""
    from qml_cli.core import credits, tenants

    with session() as db:
        result = credits.set_plan(db, tenants.get_tenant(db, slug), plan, effective=effective)
    if json_output:
        print_json(result)
    elif "pending_plan" in result:
        say(f"Tenant {slug} moves to {plan} at {result['effective_at'].isoformat()}.")
    else:
        say(f"Tenant {slug} is on {plan} now; allowance left this period: "
            f"{result['allowance_remaining']} ({result['change']:+d}).")
