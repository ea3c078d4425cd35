"""`make bench`, results section: how long a full results computation takes on synthetic events.

Creates its own PostgreSQL database, migrates it, loads `--events` synthetic PostHog-style events
with COPY (seeded, so every run sees the same data): about one user per 25 events, 75% of them
exposed to a 50/50 experiment (plus 2% holdout responses and 0.5% users who saw both variants),
purchases with a true +10% lift in conversion for `test`, and `$pageview` filler. Then runs
VACUUM ANALYZE and times each kind of full computation through `results.services` (the code the
`/query/` endpoint runs): the exposure query, a mean sum, a funnel and a ratio metric. Prints the
seconds (best of `--repeat`), the per-variant numbers and the chance to win, so the known effect
can be seen.

Then the incremental rollups: each metric's rollup is built, read again unchanged (the results
read), and refreshed after `--new-events` more events (default 100 k, over the last day, many from
existing users); the refreshed statistics are compared with a full recompute.

Run through `make bench` (which provides PostgreSQL), or alone:
`scripts/with_postgres.sh experiments_api_bench .venv/bin/python bench/results.py --events 1000000`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from bench_databases import bench_database_url, drop_database, recreate_database

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = "experiments_api_bench_results"
FLAG_KEY = "bench-checkout"
USERS_PER_EVENTS = 25
EXPOSED_SHARE = 0.75
HOLDOUT_SHARE = 0.02
BOTH_VARIANTS_SHARE = 0.005
CONVERSION = {"control": 0.10, "test": 0.11}
DAYS = 14

METRICS = {
    "mean: sum of purchase amount": {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "source": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
    },
    "funnel: pageview → purchase": {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "purchase"}],
    },
    "ratio: amount per purchase": {
        "kind": "ExperimentMetric",
        "metric_type": "ratio",
        "numerator": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
        "denominator": {"kind": "EventsNode", "event": "purchase"},
    },
}


def database_url() -> str:
    return bench_database_url(BENCH_DB)


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
    os.environ["RESULTS_QUERY_TIMEOUT_SECONDS"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "experiments_api.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def create_experiment(start: datetime):
    from accounts.models import Organization, Project
    from experiments.models import Experiment
    from flags.models import FeatureFlag

    organization = Organization.objects.create(name="Results bench")
    project = Project.objects.create(organization=organization, name="Results bench")
    flag = FeatureFlag.objects.create(
        project=project,
        key=FLAG_KEY,
        name="Bench checkout",
        active=True,
        filters={
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {
                "variants": [
                    {"key": "control", "rollout_percentage": 50},
                    {"key": "test", "rollout_percentage": 50},
                ]
            },
        },
    )
    experiment = Experiment.objects.create(
        project=project,
        name="Bench checkout",
        feature_flag=flag,
        start_date=start,
        stats_config={"method": "bayesian"},
    )
    return project, experiment


def synthetic_events(project_id: int, total: int, start: datetime, seed: int):
    """Rows for COPY: (uuid, project_id, event, distinct_id, timestamp, properties, received_at)."""
    rng = random.Random(seed)
    users = max(total // USERS_PER_EVENTS, 1)
    produced = 0
    span = DAYS * 86400

    def row(name: str, user: str, at: datetime, properties: dict) -> tuple:
        return (uuid.UUID(int=rng.getrandbits(128)), project_id, name, user, at, json.dumps(properties), at)

    for index in range(users):
        if produced >= total:
            return
        user = f"user-{index}"
        seen = start + timedelta(seconds=rng.randrange(span - 86400))
        if rng.random() < EXPOSED_SHARE:
            draw = rng.random()
            if draw < HOLDOUT_SHARE:
                variants = ["holdout-1"]
            elif draw < HOLDOUT_SHARE + BOTH_VARIANTS_SHARE:
                variants = ["control", "test"]
            else:
                variants = [rng.choice(("control", "test"))]
            for offset, variant in enumerate(variants):
                properties = {"$feature_flag": FLAG_KEY, "$feature_flag_response": variant}
                yield row("$feature_flag_called", user, seen + timedelta(minutes=offset), properties)
                produced += 1
            variant = variants[0]
            if variant in CONVERSION and rng.random() < CONVERSION[variant]:
                for purchase in range(rng.randint(1, 3)):
                    amount = round(rng.lognormvariate(3.0, 0.6), 2)
                    yield row("purchase", user, seen + timedelta(hours=1 + purchase), {"amount": amount})
                    produced += 1
        for _ in range(USERS_PER_EVENTS - 2):
            if produced >= total:
                return
            at = seen + timedelta(seconds=rng.randrange(-86400, 86400))
            yield row("$pageview", user, at, {"$session_id": f"s-{index}-{at.hour}"})
            produced += 1


def load_events(
    url: str, project_id: int, total: int, start: datetime, seed: int, received_at: datetime | None = None
) -> float:
    """COPY the synthetic events in; `received_at` overrides when the server got them (default: the
    event time), so a later batch can be marked as just arrived."""
    began = time.perf_counter()
    with psycopg.connect(url) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY events_event (uuid, project_id, event, distinct_id, timestamp, properties, received_at)"
                " FROM STDIN"
            ) as copy,
        ):
            for values in synthetic_events(project_id, total, start, seed):
                copy.write_row(values)
        connection.commit()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE events_event")
    return time.perf_counter() - began


def best_of(repeat: int, compute) -> tuple[float, dict]:
    timings, result = [], {}
    for _ in range(repeat):
        began = time.perf_counter()
        result = compute()
        timings.append(time.perf_counter() - began)
    return min(timings), result


def describe(result: dict) -> str:
    baseline = result["baseline"]
    parts = [f"{baseline['key']} n={baseline['number_of_samples']} sum={baseline['sum']:.2f}"]
    for variant in result["variant_results"]:
        parts.append(
            f"{variant['key']} n={variant['number_of_samples']} sum={variant['sum']:.2f}"
            f" chance_to_win={variant.get('chance_to_win')}"
        )
    return "; ".join(parts)


def statistics_rows(rows) -> dict:
    return {row.key: (row.number_of_samples, round(row.sum, 6), round(row.sum_squares, 4)) for row in rows}


def measure_rollups(url: str, project_id: int, experiment, args: argparse.Namespace) -> None:
    """Build each metric's rollup, read it unchanged, fold in `--new-events` more events, and check
    the refreshed result against a full recompute."""
    from django.utils import timezone

    from results.definitions import metric_analysis
    from results.engines.postgres import PostgresResultsEngine
    from results.services import experiment_metric_statistics

    print("\nIncremental rollups (target: read ≤ 1 s at 10 M events, refresh of 100 k events ≤ 2 s)")
    print(f"{'metric':<34} {'build':>7} {'read':>7} {'refresh':>8}  equals full recompute")
    builds, reads = {}, {}
    for name, metric in METRICS.items():
        builds[name], _ = best_of(
            1, lambda m=metric: experiment_metric_statistics(experiment=experiment, metric=m)
        )
        reads[name], _ = best_of(
            args.repeat, lambda m=metric: experiment_metric_statistics(experiment=experiment, metric=m)
        )
    new_start = datetime.now(UTC) - timedelta(days=1)
    load_events(
        url,
        project_id,
        args.new_events,
        new_start,
        args.seed + 1,
        received_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    for name, metric in METRICS.items():
        refresh, (rows, _, _) = best_of(
            1, lambda m=metric: experiment_metric_statistics(experiment=experiment, metric=m)
        )
        analysis = metric_analysis(experiment=experiment, metric=metric, as_of=None, now=timezone.now())
        full = PostgresResultsEngine().metric_statistics(
            exposure=analysis.exposure, metric=analysis.metric, matured_before=analysis.matured_before
        )
        same = statistics_rows(row for row in rows if row.number_of_samples) == statistics_rows(full)
        print(f"{name:<34} {builds[name]:7.2f} {reads[name]:7.2f} {refresh:8.2f}  {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new-events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    url = database_url()
    recreate_database(url)
    setup_django(url)
    from results.services import experiment_exposure_result, experiment_metric_result

    start = datetime.now(UTC) - timedelta(days=DAYS)
    project, experiment = create_experiment(start)
    load_seconds = load_events(url, project.id, args.events, start, args.seed)
    print(
        f"\nResults engine (PostgreSQL, full recompute), {args.events:,} events; loaded in {load_seconds:.1f} s"
    )
    print(f"{'computation':<34} {'seconds':>8}  result")
    seconds, exposures = best_of(args.repeat, lambda: experiment_exposure_result(experiment=experiment))
    srm = exposures["sample_ratio_mismatch"] or {}
    print(
        f"{'exposures + SRM':<34} {seconds:8.2f}  totals={exposures['total_exposures']}"
        f" srm_p={srm.get('p_value')}"
    )
    for name, metric in METRICS.items():
        # A result as of a given instant is always computed in full from the events.
        seconds, result = best_of(
            args.repeat,
            lambda m=metric: experiment_metric_result(
                experiment=experiment, metric=m, as_of=datetime.now(UTC)
            ),
        )
        print(f"{name:<34} {seconds:8.2f}  {describe(result)}")
    measure_rollups(url, project.id, experiment, args)
    if not args.keep:
        from django.db import connections

        connections.close_all()
        drop_database(url)


if __name__ == "__main__":
    main()
