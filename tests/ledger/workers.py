"""Child-process bodies of the ledger tests, started with the 'spawn' method.

Each child opens its own engine from the URL it is given, as a separate host would.
"""

from __future__ import annotations

import datetime as dt
import os
import signal


def _session(url: str):
    from qml_cli.core.db import make_engine, session_scope

    return session_scope(make_engine(url))


def reserve_then_die(url: str, slug: str, now: dt.datetime) -> None:
    """Reserve 5 credits, commit the transaction, then die before the hold commits."""
    from qml_cli.core import credits, tenants

    with _session(url) as session:
        tenant = tenants.get_tenant(session, slug)
        credits.reserve(
            session,
            tenant,
            5,
            operation="prediction",
            key="crash-run",
            timeout_s=60,
            now=now,
        )
    os.kill(os.getpid(), signal.SIGKILL)


def consume_many(
    url: str, slug: str, keys: list[str], now: dt.datetime, barrier, results
) -> None:
    """Consume one credit per key after the barrier; put (key, outcome) on `results`."""
    from qml_cli.core import credits, tenants
    from qml_cli.errors import InsufficientCredits

    barrier.wait()
    for key in keys:
        try:
            with _session(url) as session:
                charge = credits.consume(
                    session,
                    tenants.get_tenant(session, slug),
                    1,
                    operation="prediction",
                    key=key,
                    now=now,
                )
            results.put((key, "replayed" if charge.replayed else "charged"))
        except InsufficientCredits:
            results.put((key, "insufficient"))


def reset_all(url: str, now: dt.datetime, barrier, results) -> None:
    """Run the monthly reset once after the barrier; put the number of resets."""
    from qml_cli.core import credits
    from qml_cli.core.db import make_engine, session_scope

    engine = make_engine(url)
    barrier.wait()
    report = credits.reset_monthly(lambda: session_scope(engine), now=now)
    results.put(len(report["resets"]))
