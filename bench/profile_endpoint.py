"""Where one endpoint's time goes: CPU per request and a cProfile of many requests, in-process.

Runs requests through Django's WSGI handler (the test client), so gunicorn, wrk and the network
are left out and what remains is the server's own work. Use it on the database `make bench` leaves
behind (it is not dropped afterwards), e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/experiments_api_bench \\
        .venv/bin/python bench/profile_endpoint.py GET /api/users/@me/ --count 500
    .venv/bin/python bench/profile_endpoint.py POST /flags/?v=2 --body '{"api_key": "phc_…", "distinct_id": "u"}'

Paths may contain `{project}` (the bench project's id) and `{experiment}` (`--experiment`, else
the bench project's first draft experiment), bodies `{token}` (its public token); requests carry a
fresh all-scopes key of the bench project's owner unless `--anonymous`.

`--then PATH` (repeatable) makes a cycle: each round sends the first request, then one to each
`--then` path with the same method and body, and the figures are given per path. The launch → reset
cycle of `make bench`, on a copy of the bench database (it writes):

    bench/profile_endpoint.py POST /api/projects/{project}/experiments/{experiment}/launch/ \
        --then /api/projects/{project}/experiments/{experiment}/reset/ --body '{}' --count 200

Besides CPU time it reports wall time per request, split into the time spent waiting for the
database's answers to statements, for COMMIT (its WAL flush included) and the rest (Python, which
is what CPU time measures, plus waiting for the CPU on a busy machine).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "experiments_api.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
os.environ.setdefault("RATE_LIMIT_ENABLED", "false")
# The test client speaks plain HTTP to `testserver`.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("method")
    parser.add_argument("path")
    parser.add_argument("--then", action="append", default=[], help="a path requested after `path`, in turn")
    parser.add_argument("--experiment", type=int, default=None, help="the id `{experiment}` stands for")
    parser.add_argument("--body", default=None)
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("--project-name", default="Bench")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--anonymous", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key, e.g. tottime")
    parser.add_argument("--no-profile", action="store_true", help="only the queries and the timings")
    parser.add_argument(
        "--cpu-profile", action="store_true", help="profile CPU time (default: wall time, waits included)"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import OrganizationMembership, PersonalAPIKey, Project
    from accounts.services import personal_api_key_create

    project = Project.objects.get(name=args.project_name)
    headers = dict(header.split(": ", 1) for header in args.header)
    if not args.anonymous:
        owner = OrganizationMembership.objects.filter(organization_id=project.organization_id).first().user
        # A user may hold 10 keys: the keys of earlier runs go first.
        PersonalAPIKey.objects.filter(user=owner, label__startswith="profile ").delete()
        secret = personal_api_key_create(user=owner, label=f"profile {time.time()}", scopes=["*"]).secret
        headers.setdefault("Authorization", f"Bearer {secret}")
    experiment_id = args.experiment or first_draft_experiment(project)
    paths = [
        path.replace("{project}", str(project.id)).replace("{experiment}", str(experiment_id))
        for path in [args.path, *args.then]
    ]
    body = args.body.replace("{token}", project.api_token) if args.body else None
    client = Client()
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}

    def request(path: str):
        if body is None:
            return client.generic(args.method, path, **meta)
        return client.generic(args.method, path, body, content_type="application/json", **meta)

    def cycle() -> None:
        for path in paths:
            request(path)

    for path in paths:
        first = request(path)
        print(f"{args.method} {path} → {first.status_code}, {len(first.content)} bytes")
    for path in paths:
        with CaptureQueriesContext(connection) as captured:
            request(path)
        print(f"{path}: {len(captured)} queries:")
        for query in captured.captured_queries:
            print(f"  {query['time']}s  {query['sql'][:150]}")

    timings = {path: Timings() for path in paths}
    with connection.execute_wrapper(statement_timed), commit_timed(connection):
        for _ in range(args.count):
            for path in paths:
                timings[path].request(lambda path=path: request(path))
    for path, timing in timings.items():
        print(timing.summary(path, args.count))
    if args.no_profile:
        return

    profile = cProfile.Profile(time.process_time) if args.cpu_profile else cProfile.Profile()
    profile.enable()
    for _ in range(args.count):
        cycle()
    profile.disable()
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


def first_draft_experiment(project) -> int | None:
    from experiments.models import Experiment

    return (
        Experiment.objects.filter(project=project, deleted=False, start_date__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )


class Timings:
    """One path's CPU and wall time per request, and the wall time spent waiting on statements and
    on COMMIT."""

    current: Timings | None = None

    def __init__(self) -> None:
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.statements: list[float] = []
        self.commits: list[float] = []
        self._statement = self._commit = 0.0

    def request(self, send: Callable[[], object]) -> None:
        self._statement = self._commit = 0.0
        Timings.current = self
        cpu, wall = time.process_time(), time.perf_counter()
        send()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        Timings.current = None
        self.statements.append(self._statement)
        self.commits.append(self._commit)

    def summary(self, path: str, count: int) -> str:
        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:.3f}"

        rest = [
            wall - statement - commit
            for wall, statement, commit in zip(self.wall, self.statements, self.commits, strict=True)
        ]
        return (
            f"{path} ({count} requests), medians in ms: CPU {ms(self.cpu)}, wall {ms(self.wall)} = "
            f"statements {ms(self.statements)} + COMMIT {ms(self.commits)} + rest {ms(rest)}"
        )


def statement_timed(execute, sql, params, many, context):
    """An execute wrapper adding each statement's round trip to the request being timed."""
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        if Timings.current is not None:
            Timings.current._statement += time.perf_counter() - started


@contextmanager
def commit_timed(connection) -> Iterator[None]:
    """Add the connection's COMMITs (each waits for its WAL flush) to the request being timed."""
    commit = connection._commit

    def timed_commit():
        started = time.perf_counter()
        try:
            return commit()
        finally:
            if Timings.current is not None:
                Timings.current._commit += time.perf_counter() - started

    connection._commit = timed_commit
    try:
        yield
    finally:
        del connection._commit


if __name__ == "__main__":
    main()
