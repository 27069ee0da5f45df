"""Concurrent writers on PostgreSQL: 16 spawned processes, each with its own engine."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections import Counter

import pytest

from qml_cli.core import credits

from . import workers
from .conftest import T0, audit_ok, available, create, ledger_rows, tenant_of

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PROCESSES = 16


def run_processes(target, argument_lists) -> list:
    """Start one spawned process per argument list; return everything they put."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(argument_lists))
    results = context.Queue()
    children = [
        context.Process(target=target, args=(*args, barrier, results))
        for args in argument_lists
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(300)
    assert [child.exitcode for child in children] == [0] * len(children)
    items = []
    while not results.empty():
        items.append(results.get())
    return items


@pytest.fixture
def url(pg_engine):
    return pg_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def pg_db(pg_engine):
    from qml_cli.core.db import session_scope

    return lambda: session_scope(pg_engine)


@pytest.mark.parametrize("granted", [0, 10])
def test_concurrent_consumes_stop_at_balance(url, pg_db, granted):
    """Without a grant the consumptions take the fast path, with one the general."""
    create(pg_db, "acme")
    if granted:
        with pg_db() as session:
            credits.grant(
                session,
                tenant_of(session, "acme"),
                granted,
                reason="r",
                key="g",
                now=T0,
            )
    balance = 30 + granted
    keys = [[f"p{p}-k{n}" for n in range(5)] for p in range(PROCESSES)]
    outcomes = run_processes(
        workers.consume_many, [(url, "acme", chunk, T0) for chunk in keys]
    )
    counts = Counter(outcome for _, outcome in outcomes)
    assert counts == {"charged": balance, "insufficient": 5 * PROCESSES - balance}
    assert available(pg_db, "acme", T0) == 0
    assert len(ledger_rows(pg_db, "acme", "consume")) == balance
    assert audit_ok(pg_db)


def test_concurrent_same_key_charges_once(url, pg_db):
    create(pg_db, "acme")
    outcomes = run_processes(
        workers.consume_many, [(url, "acme", ["same-key"], T0)] * PROCESSES
    )
    counts = Counter(outcome for _, outcome in outcomes)
    assert counts == {"charged": 1, "replayed": PROCESSES - 1}
    assert available(pg_db, "acme", T0) == 29
    assert len(ledger_rows(pg_db, "acme", "consume")) == 1
    assert audit_ok(pg_db)


def test_concurrent_resets_write_one_per_period(url, pg_db):
    created = dt.datetime(2027, 1, 10, tzinfo=dt.UTC)
    slugs = [f"t{number}" for number in range(30)]
    for number, slug in enumerate(slugs):
        create(
            pg_db,
            slug,
            now=created,
            timezone=["UTC", "Africa/Johannesburg", "America/Sao_Paulo"][number % 3],
        )
    now = dt.datetime(2027, 5, 3, tzinfo=dt.UTC)
    written = run_processes(workers.reset_all, [(url, now), (url, now)])
    assert sum(written) == len(slugs) * 4
    for slug in slugs:
        resets = [
            row
            for row in ledger_rows(pg_db, slug, "reset")
            if row.operation == "monthly_reset"
        ]
        assert len(resets) == 4
        assert len({row.idempotency_key for row in resets}) == 4
    assert audit_ok(pg_db)
