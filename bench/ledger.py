"""Benchmark qml's consume path against pgbench's simple-update on one PostgreSQL.

Run: python bench/ledger.py [--seconds 10] [--clients 1,4,8] [--write PAGE]

Creates a throwaway database on the server of `--admin-url` (default: postgres at
127.0.0.1:5432), puts pgbench's tables (scale 1) and qml's schema in it, and drops
it at the end. For each client count it runs, one after the other:

- pgbench's built-in `simple-update` script (`-M simple`, one thread a client),
  with per-transaction latencies from its `-l` log;
- qml's consume path: one spawned process a client, each with its own engine and
  session factory, each transaction calling `credits.consume` for one credit of a
  random tenant with a fresh idempotency key. Workers load their tenants once and
  attach them to each session without a query, as a long-running worker does;
- qml's batch path: the same, with `credits.consume_batch` of `--batch` charges
  of one tenant in one transaction.

Then the audit recomputes every balance from the ledger, and the consume rows are
counted against the successes the workers reported. BLAS is pinned to one thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import glob  # noqa: E402
import multiprocessing  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

NOW = dt.datetime(2027, 3, 10, 12, 0, tzinfo=dt.UTC)
BENCH_PLAN = "bench_unlimited"


@dataclass
class Figures:
    """Throughput, latency and client CPU of one run. `rate` counts charges, which
    differ from transactions in a batch run."""

    tps: float
    p50_ms: float
    p99_ms: float
    rate: float
    client_cpu_ms: float


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def find_pgbench() -> str:
    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        raise SystemExit("pgbench not found; install postgresql-contrib")
    return found


def server_dsn(admin_url: str, database: str) -> str:
    url = make_url(admin_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


def server_options(url) -> list[str]:
    """Return the pgbench options that name the server, user and database of `url`."""
    return [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        url.database,
    ]


def prepare_database(admin_url: str, tenants: int, pgbench: str) -> str:
    """Create the throwaway database with both schemas; return its name."""
    from qml_cli.core import migrate, seeds
    from qml_cli.core import tenants as tenant_core
    from qml_cli.core.db import make_engine, session_scope
    from qml_cli.core.models import SubscriptionPlan

    name = f"qml_bench_ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn(admin_url, "postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_dsn(admin_url, name))
    subprocess.run(
        [
            pgbench,
            "-i",
            "-s",
            "1",
            "-q",
            *server_options(url),
        ],
        check=True,
        capture_output=True,
    )
    engine = make_engine(server_dsn(admin_url, name))
    migrate.upgrade("head", engine)
    with session_scope(engine) as session:
        seeds.upsert_plans(session)
        session.add(
            SubscriptionPlan(
                name=BENCH_PLAN,
                display_name="Benchmark",
                monthly_ml_credits=2_000_000_000,
                auto_predictions_per_day=0,
                scheduled_workflows=0,
            )
        )
    with session_scope(engine) as session:
        for number in range(tenants):
            tenant_core.create_tenant(
                session,
                f"bench-{number}",
                name=None,
                plan_name=BENCH_PLAN,
                timezone="UTC",
                is_test=True,
                now=NOW,
            )
    return name


def vacuum(admin_url: str, name: str) -> None:
    with psycopg.connect(server_dsn(admin_url, name), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        connection.execute("CHECKPOINT")


def run_pgbench(
    pgbench: str, admin_url: str, name: str, clients: int, seconds: int
) -> Figures:
    url = make_url(server_dsn(admin_url, name))
    cpu_before = children_cpu()
    with tempfile.TemporaryDirectory() as folder:
        prefix = str(Path(folder) / "log")
        output = subprocess.run(
            [
                pgbench,
                "-b",
                "simple-update",
                "-M",
                "simple",
                "-n",
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-T",
                str(seconds),
                "-l",
                f"--log-prefix={prefix}",
                *server_options(url),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        latencies = []
        for path in Path(folder).glob("log*"):
            for line in path.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000)
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection", output)[1])
    cpu_ms = (children_cpu() - cpu_before) * 1000 / (tps * seconds)
    return Figures(
        tps, percentile(latencies, 0.5), percentile(latencies, 0.99), tps, cpu_ms
    )


def children_cpu() -> float:
    """Return the CPU seconds (user and system) of the finished child processes."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def qml_worker(
    url: str,
    tenant_ids: list[int],
    seconds: float,
    batch: int,
    seed: int,
    barrier,
    results,
) -> None:
    """Charge random tenants until the time is up; put (transactions, charges,
    latencies in ms) on `results`."""
    import random

    from sqlalchemy import select
    from sqlalchemy.orm import sessionmaker

    from qml_cli.core import credits
    from qml_cli.core.db import make_engine
    from qml_cli.core.models import Tenant

    factory = sessionmaker(make_engine(url), expire_on_commit=False)
    with factory.begin() as session:
        known = {
            t.id: t
            for t in session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))
        }
    chooser = random.Random(seed)
    latencies: list[float] = []
    charges = 0
    barrier.wait()
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        with factory.begin() as session:
            tenant = session.merge(known[chooser.choice(tenant_ids)], load=False)
            keys = [f"w{seed}-{len(latencies)}-{n}" for n in range(max(batch, 1))]
            if batch:
                items = [credits.ChargeItem(1, "prediction", key) for key in keys]
                charges += len(credits.consume_batch(session, tenant, items, now=NOW))
            else:
                credits.consume(
                    session, tenant, 1, operation="prediction", key=keys[0], now=NOW
                )
                charges += 1
        latencies.append((time.perf_counter() - started) * 1000)
    results.put((len(latencies), charges, latencies, time.process_time() - cpu_started))


def run_qml(
    url: str, tenant_ids: list[int], clients: int, seconds: int, batch: int, run: int
) -> tuple[Figures, int]:
    """Run `clients` spawned workers for `seconds`; return their figures and the
    charges they made."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients + 1)
    results = context.Queue()
    workers = [
        context.Process(
            target=qml_worker,
            args=(
                url,
                tenant_ids,
                seconds,
                batch,
                run * 100 + number,
                barrier,
                results,
            ),
        )
        for number in range(clients)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()

    collected = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(60)

    transactions = sum(item[0] for item in collected)
    charges = sum(item[1] for item in collected)
    latencies = [value for item in collected for value in item[2]]
    figures = Figures(
        transactions / seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        charges / seconds,
        sum(item[3] for item in collected) * 1000 / max(transactions, 1),
    )
    return figures, charges


def check_ledger(url: str, charged: int) -> dict:
    """Audit every balance and compare the consume rows with the charges made."""
    from sqlalchemy import func, select

    from qml_cli.core import credit_reports
    from qml_cli.core.db import make_engine, session_scope
    from qml_cli.core.models import MlUsageHistory

    with session_scope(make_engine(url)) as session:
        report = credit_reports.audit(session)
        rows = session.scalar(
            select(func.count())
            .select_from(MlUsageHistory)
            .where(MlUsageHistory.kind == "consume")
        )
    return {
        "audit_ok": report["ok"],
        "mismatches": len(report["mismatches"]),
        "consume_rows": rows,
        "charges_reported": charged,
        "ledger_rows": report["ledger_rows"],
    }


def table(rows: list[tuple[int, Figures, Figures, Figures]], batch: int) -> str:
    lines = [
        "| clients | pgbench tps | p50 ms | p99 ms | client CPU ms/tx "
        "| qml consume tps | p50 ms | p99 ms | client CPU ms/tx | ratio "
        f"| batch of {batch}: charges/s | p50 ms | p99 ms | batch / pgbench |",
        "|---:" * 14 + "|",
    ]
    for clients, base, single, batched in rows:
        lines.append(
            f"| {clients} | {base.tps:.0f} | {base.p50_ms:.2f} | {base.p99_ms:.2f} "
            f"| {base.client_cpu_ms:.3f} "
            f"| {single.tps:.0f} | {single.p50_ms:.2f} | {single.p99_ms:.2f} "
            f"| {single.client_cpu_ms:.3f} | {single.tps / base.tps:.2f} "
            f"| {batched.rate:.0f} | {batched.p50_ms:.2f} | {batched.p99_ms:.2f} "
            f"| {batched.rate / base.tps:.1f} |"
        )
    return "\n".join(lines)


def server_facts(admin_url: str) -> str:
    with psycopg.connect(server_dsn(admin_url, "postgres")) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        sync = connection.execute("SHOW synchronous_commit").fetchone()[0]
    return f"PostgreSQL {version}, synchronous_commit={sync}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL of the server to create the throwaway database on",
    )
    parser.add_argument("--seconds", type=int, default=10, help="seconds per run")
    parser.add_argument(
        "--clients", default="1,4,8", help="client counts, comma-separated"
    )
    parser.add_argument(
        "--tenants", type=int, default=1000, help="tenants to spread over"
    )
    parser.add_argument("--batch", type=int, default=100, help="charges per batch")
    parser.add_argument("--write", type=Path, help="write the table into this page")
    options = parser.parse_args()

    pgbench = find_pgbench()
    name = prepare_database(options.admin_url, options.tenants, pgbench)
    url = server_dsn(options.admin_url, name).replace(
        "postgresql://", "postgresql+psycopg://"
    )
    try:
        tenant_ids = list(range(1, options.tenants + 1))
        rows, charged = [], 0
        load_before = os.getloadavg()[0]
        for run, clients in enumerate(int(c) for c in options.clients.split(",")):
            vacuum(options.admin_url, name)
            base = run_pgbench(
                pgbench, options.admin_url, name, clients, options.seconds
            )
            vacuum(options.admin_url, name)
            single, count = run_qml(url, tenant_ids, clients, options.seconds, 0, run)
            charged += count
            vacuum(options.admin_url, name)
            batched, count = run_qml(
                url, tenant_ids, clients, options.seconds, options.batch, run + 50
            )
            charged += count
            rows.append((clients, base, single, batched))
            print(
                f"{clients} clients: pgbench {base.tps:.0f} tps, qml {single.tps:.0f} "
                f"tps, batch {batched.rate:.0f} charges/s",
                flush=True,
            )
        load_after = os.getloadavg()[0]
        checks = check_ledger(url, charged)
    finally:
        from qml_cli.core.db import make_engine

        make_engine(url).dispose()
        with psycopg.connect(
            server_dsn(options.admin_url, "postgres"), autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    report = table(rows, options.batch)
    facts = (
        f"{server_facts(options.admin_url)}; {options.seconds} s a run, "
        f"{options.tenants} tenants; load average {load_before:.1f} before and "
        f"{load_after:.1f} after."
    )
    checks_line = (
        f"Audit clean: {checks['audit_ok']} ({checks['mismatches']} "
        f"mismatches); consume rows {checks['consume_rows']} for "
        f"{checks['charges_reported']} charges reported; "
        f"{checks['ledger_rows']} ledger rows in all."
    )
    print(report)
    print(facts)
    print(checks_line)
    if options.write:
        write_page(options.write, report, facts, checks_line)


def write_page(path: Path, report: str, facts: str, checks_line: str) -> None:
    """Replace the text between the measured-table markers of `path`."""
    text = path.read_text(encoding="utf-8")
    start, end = "<!-- measured: bench/ledger.py -->", "<!-- end measured -->"
    block = f"{start}\n{report}\n\n{facts}\n{checks_line}\n{end}"
    path.write_text(
        re.sub(re.escape(start) + ".*?" + re.escape(end), block, text, flags=re.S),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
