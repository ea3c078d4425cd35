"""`make bench-backends`: the same results computations on PostgreSQL and on ClickHouse, side by side.

Loads `--events` synthetic events (the generator of `bench/results.py`, same seed, same known
effect) into a PostgreSQL database of its own with COPY, copies them into ClickHouse — chDB in a
temporary directory standing in for a server, or the server at `--clickhouse-url` — and times each
full computation through `results.services` (what `/query/` runs) with `EVENTS_BACKEND=postgres`
and then `clickhouse`. Prints seconds per backend (best of `--repeat`) and whether both gave the
same per-variant numbers.

The ClickHouse copy is read straight from PostgreSQL by ClickHouse's `postgresql()` table function
(fast; it needs the database reachable from ClickHouse). `--backfill-sample N` also times the
`clickhouse_backfill` service on the newest N events, the path an operator uses.

Run through `make bench-backends` (which provides PostgreSQL), or alone:
`scripts/with_postgres.sh experiments_api_bench .venv/bin/python bench/results_backends.py --events 1000000`.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Not bench/results.py's database: both benchmarks may run at once.
BENCH_DB = "experiments_api_bench_backends"


def load_results_bench():
    """bench/results.py (its generator, database and Django set-up), under a name that does not
    shadow the `results` app."""
    spec = importlib.util.spec_from_file_location("results_bench", BENCH / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_into_clickhouse(client, pg_url: str) -> float:
    """INSERT … SELECT from PostgreSQL's events table through ClickHouse's postgresql() function."""
    parts = urllib.parse.urlparse(pg_url)
    began = time.perf_counter()
    client.command(
        "INSERT INTO events (project_id, uuid, event, distinct_id, timestamp, seq, properties)"
        " SELECT project_id, uuid, event, distinct_id, timestamp, id, properties"
        " FROM postgresql({address:String}, {database:String}, 'events_event', {user:String}, {password:String})",
        {
            "address": f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}",
            "database": parts.path.lstrip("/"),
            "user": urllib.parse.unquote(parts.username or "postgres"),
            "password": urllib.parse.unquote(parts.password or ""),
        },
    )
    client.command("OPTIMIZE TABLE events FINAL")
    return time.perf_counter() - began


def comparable(result: dict) -> list:
    """The per-variant numbers of an ExperimentQuery or ExperimentExposureQuery response."""
    if "total_exposures" in result:
        return sorted(result["total_exposures"].items())
    rows = [result["baseline"], *result["variant_results"]]
    return [
        (row["key"], row["number_of_samples"], round(row["sum"], 6), round(row["sum_squares"], 4))
        for row in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--clickhouse-url", default="", help="a server (http://…); default: chDB in a temp dir"
    )
    parser.add_argument("--backfill-sample", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    args = parser.parse_args()

    bench = load_results_bench()
    bench.BENCH_DB = BENCH_DB
    pg_url = bench.database_url()
    bench.recreate_database(pg_url)
    bench.setup_django(pg_url)

    from django.test import override_settings

    from events.clickhouse import clickhouse_client, schema_migrate
    from events.models import Event
    from events.services import events_backfill_to_clickhouse
    from results.services import experiment_exposure_result, experiment_metric_result

    clickhouse_url = args.clickhouse_url or f"chdb://{tempfile.mkdtemp(prefix='bench-chdb-')}"
    client = clickhouse_client(clickhouse_url)
    schema_migrate(client)
    client.command("TRUNCATE TABLE events")

    start = datetime.now(UTC) - timedelta(days=bench.DAYS)
    project, experiment = bench.create_experiment(start)
    pg_load = bench.load_events(pg_url, project.id, args.events, start, args.seed)
    backfill_line = ""
    if args.backfill_sample:
        # The operator's path, timed on the newest events; then the table is emptied for the fast copy.
        last_id = Event.objects.order_by("-id").values_list("id", flat=True).first()
        began = time.perf_counter()
        copied = events_backfill_to_clickhouse(after_id=max(last_id - args.backfill_sample, 0), client=client)
        backfill_seconds = time.perf_counter() - began
        backfill_line = (
            f"clickhouse_backfill service: {copied:,} events in {backfill_seconds:.1f} s"
            f" ({copied / backfill_seconds:,.0f} events/s)"
        )
        client.command("TRUNCATE TABLE events")
    ch_load = copy_into_clickhouse(client, pg_url)
    stored = client.query("SELECT count() FROM events FINAL", {})[0][0]
    in_postgres = Event.objects.count()
    assert stored == in_postgres, f"ClickHouse holds {stored} events, PostgreSQL {in_postgres}"

    computations = {"exposures + SRM": lambda: experiment_exposure_result(experiment=experiment)}
    for name, metric in bench.METRICS.items():
        computations[name] = lambda m=metric: experiment_metric_result(experiment=experiment, metric=m)

    print(f"\nResults on both event stores, {in_postgres:,} events (full recompute, best of {args.repeat})")
    print(
        f"load: PostgreSQL COPY + VACUUM ANALYZE {pg_load:.1f} s; ClickHouse copy + OPTIMIZE {ch_load:.1f} s"
    )
    if backfill_line:
        print(backfill_line)
    store = "ClickHouse" if args.clickhouse_url else "chDB"
    print(f"{'computation':<34} {'PostgreSQL s':>12} {store + ' s':>12} {'ratio':>7}  same numbers")
    for name, compute in computations.items():
        with override_settings(EVENTS_BACKEND="postgres"):
            pg_seconds, pg_result = bench.best_of(args.repeat, compute)
        with override_settings(EVENTS_BACKEND="clickhouse", CLICKHOUSE_URL=clickhouse_url):
            ch_seconds, ch_result = bench.best_of(args.repeat, compute)
        same = comparable(pg_result) == comparable(ch_result)
        ratio = pg_seconds / ch_seconds if ch_seconds else math.inf
        print(f"{name:<34} {pg_seconds:12.2f} {ch_seconds:12.2f} {ratio:6.1f}x  {'yes' if same else 'NO'}")
        if not same:
            print(f"  PostgreSQL: {comparable(pg_result)}\n  ClickHouse: {comparable(ch_result)}")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        bench.drop_database(pg_url)


if __name__ == "__main__":
    main()
