"""Where one endpoint's time goes: CPU per request and a cProfile of many requests, in-process.

Runs requests through Django's WSGI handler (the test client), so gunicorn, wrk and the network
are left out and what remains is the server's own work. Use it on the database `make bench` leaves
behind (it is not dropped afterwards), e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/experiments_api_bench \\
        .venv/bin/python bench/profile_endpoint.py GET /api/users/@me/ --count 500
    .venv/bin/python bench/profile_endpoint.py POST /flags/?v=2 --body '{"api_key": "phc_…", "distinct_id": "u"}'

Paths may contain `{project}` (the bench project's id) and bodies `{token}` (its public token);
requests carry a fresh all-scopes key of the bench project's owner unless `--anonymous`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
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
    parser.add_argument("--body", default=None)
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("--project-name", default="Bench")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--anonymous", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key, e.g. tottime")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import OrganizationMembership, Project
    from accounts.services import personal_api_key_create

    project = Project.objects.get(name=args.project_name)
    headers = dict(header.split(": ", 1) for header in args.header)
    if not args.anonymous:
        owner = OrganizationMembership.objects.filter(organization_id=project.organization_id).first().user
        secret = personal_api_key_create(user=owner, label=f"profile {time.time()}", scopes=["*"]).secret
        headers.setdefault("Authorization", f"Bearer {secret}")
    path = args.path.replace("{project}", str(project.id))
    body = args.body.replace("{token}", project.api_token) if args.body else None
    client = Client()
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}

    def request():
        if body is None:
            return client.generic(args.method, path, **meta)
        return client.generic(args.method, path, body, content_type="application/json", **meta)

    first = request()
    print(f"{args.method} {path} → {first.status_code}, {len(first.content)} bytes")
    with CaptureQueriesContext(connection) as captured:
        request()
    print(f"{len(captured)} queries:")
    for query in captured.captured_queries:
        print(f"  {query['time']}s  {query['sql'][:150]}")

    spent = []
    for _ in range(args.count):
        started = time.process_time()
        request()
        spent.append(time.process_time() - started)
    print(
        f"CPU per request: median {statistics.median(spent) * 1000:.3f} ms, "
        f"mean {statistics.fmean(spent) * 1000:.3f} ms"
    )

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.count):
        request()
    profile.disable()
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
