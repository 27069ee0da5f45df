"""Time `qml predict run --due` over many due predictions of two years of daily data.

Creates a throwaway PostgreSQL database (or a SQLite file with --sqlite), N tenants
with one prediction each on a bench plan without a daily limit, makes them all due,
then runs the job with 1 and with ML_MAX_CONCURRENT worker processes and prints
predictions per second. Usage: python bench/predict_run.py [--count 1000] [--sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile
import time
import uuid

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BENCH_PLAN = {
    "name": "bench_unlimited",
    "display_name": "Bench",
    "monthly_ml_credits": 1_000_000,
    "auto_predictions_per_day": 1_000_000,
    "scheduled_workflows": 1_000_000,
}


def series(seed: int, days: int = 730) -> list[tuple[dt.datetime, float]]:
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    points = []
    for day in range(days):
        weekly = 15 * math.sin(2 * math.pi * day / 7 + seed)
        yearly = 30 * math.sin(2 * math.pi * day / 365.25)
        noise = 8 * math.sin(day * 12.9898 + seed * 78.233) % 1
        points.append((start + dt.timedelta(days=day), 200 + 0.1 * day + weekly + yearly + noise))
    return points


def populate(count: int) -> None:
    from sqlalchemy import insert, update

    from qml_cli.core import migrate, predictions, seeds, tenants
    from qml_cli.core.db import get_engine, session_scope
    from qml_cli.core.models import AutoPrediction, MetricPoint

    migrate.upgrade("head", get_engine())
    with session_scope() as session:
        seeds.upsert_plans(session, [*seeds.CANONICAL_PLANS, BENCH_PLAN])
        seeds.seed_ml_config(session)
    for index in range(count):
        with session_scope() as session:
            tenant = tenants.create_tenant(session, f"bench-{index}", name=None,
                                           plan_name="bench_unlimited", timezone="UTC",
                                           is_test=True)
            session.execute(insert(MetricPoint), [
                {"tenant_id": tenant.id, "metric": "sales", "ts": ts, "value": value}
                for ts, value in series(index)])
            predictions.create(session, tenant, "daily", metric="sales", horizon=30)
    with session_scope() as session:
        session.execute(update(AutoPrediction).values(
            next_run_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))


def make_due() -> None:
    from sqlalchemy import update

    from qml_cli.core.db import session_scope
    from qml_cli.core.models import AutoPrediction

    with session_scope() as session:
        session.execute(update(AutoPrediction).values(
            next_run_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))


def timed_run(workers: int) -> tuple[float, dict]:
    from qml_cli.core import prediction_runs

    make_due()
    started = time.perf_counter()
    summary = prediction_runs.run_due(workers=workers)
    return time.perf_counter() - started, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="Due predictions.")
    parser.add_argument("--sqlite", action="store_true", help="Use SQLite, not PostgreSQL.")
    parser.add_argument("--workers", type=int, default=int(os.environ.get(
        "ML_MAX_CONCURRENT", "2")), help="Worker processes for the parallel run.")
    options = parser.parse_args()

    admin = None
    if options.sqlite:
        folder = tempfile.mkdtemp(prefix="qml-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    else:
        import psycopg

        name = f"qml_bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres",
                                autocommit=True)
        admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1/{name}"
    try:
        started = time.perf_counter()
        populate(options.count)
        print(f"set-up: {options.count} tenants x 730 daily points in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"{'workers':>8} {'seconds':>9} {'predictions/s':>14} {'ran':>6} {'failed':>7}")
        for workers in sorted({1, options.workers}):
            seconds, summary = timed_run(workers)
            print(f"{workers:>8} {seconds:>9.1f} {summary['run'] / seconds:>14.1f} "
                  f"{summary['run']:>6} {summary['failed']:>7}")
    finally:
        if admin is not None:
            from qml_cli.core.db import make_engine

            make_engine.cache_clear()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


if __name__ == "__main__":
    sys.exit(main())
