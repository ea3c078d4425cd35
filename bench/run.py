"""`make bench`: throughput and latency of the main endpoints, as ratios to the server's floor.

Starts gunicorn (2 workers) on a fresh PostgreSQL database, seeds a project through the API, runs
VACUUM ANALYZE (what autovacuum does after a bulk load), and drives each endpoint with wrk from
another process for a fixed time, `--rounds` times (default 3), reporting the median round.
Prints requests/s, p50 and p99, the ratio to `GET /_liveness` throughput, the peers' ratios
measured the same way on the same machine class, the CPU time one request costs in-process, the
database queries each request makes, and the list latency with 100 and with 100 000 experiments —
each next to its target, PASS or FAIL. `/flags` is measured against the seeded project (~120 flags)
and against one with 1 000 flags; the report states both counts.

Run through `make bench` (which provides PostgreSQL and wrk). Options: `--duration` seconds per
endpoint (default 8), `--connections` (default 16), `--large` experiments in the big project
(default 100000), `--rounds` (default 3), `--only` (measure only the endpoints whose name contains one of the given
texts, e.g. `--only /flags definitions`; the floor and `/_health` are always measured, and the writes
and the 100 000-experiment list only when named). `BENCH_DATABASE` names the database it drops and
recreates (default experiments_api_bench).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
from bench_databases import bench_database_url, recreate_database

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BENCH_DB = os.environ.get("BENCH_DATABASE", "experiments_api_bench")
SECRET_KEY = "bench-secret-key-not-for-production"


@dataclass
class Measurement:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: str = ""
    queries: int | None = None
    server_ms: float | None = None


# The list of the project of `--large` experiments, measured after every other read.
LARGE_LIST = "GET experiments (100) of 100 000"

TARGETS = {
    "GET /api/users/@me/": 0.8,
    "GET experiment": 0.5,
    "GET feature flag": 0.5,
    "GET experiments (100)": 0.25,
    "GET feature flags (100)": 0.25,
    "POST launch→reset cycle": 0.15,
    "POST /flags (one key)": 0.6,
    "POST /flags (all flags)": 0.25,
    "POST /flags (one key, 1000 flags)": 0.6,
    "POST /flags (all, 1000 flags)": 0.25,
    "GET definitions (304)": 0.8,
    "GET definitions (304, personal key)": 0.8,
}

# The peers' ratios to their own floor, measured with the same method (wrk 2×8) on this machine
# class: Unleash's client-features endpoint and Flagsmith's flags / list / retrieve endpoints.
PEERS = {
    "GET experiment": ("0.13×", "0.040×"),
    "GET feature flag": ("0.13×", "0.040×"),
    "GET experiments (100)": ("0.12×", "0.006×"),
    "GET feature flags (100)": ("0.12×", "0.006×"),
    "POST /flags (one key)": ("0.42×", "0.043×"),
    "POST /flags (one key, 1000 flags)": ("0.42×", "0.043×"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "RATE_LIMIT_ENABLED": "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESS_LOG": "",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout


class Api:
    """A tiny HTTP client for seeding through the API."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")


def wait_for(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/_liveness", timeout=1)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start") from None
            time.sleep(0.2)


LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def answer_status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as answer:
        return answer.code


def wrk_output(url: str, script: str, *, duration: int, connections: int, threads: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = handle.name
    try:
        return subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                script_path,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
            errors="replace",
        ).stdout
    finally:
        os.unlink(script_path)


def run_wrk(
    name: str,
    url: str,
    script: str,
    *,
    duration: int,
    connections: int,
    threads: int,
    prepare: Callable[[], None] | None = None,
) -> Measurement:
    """One wrk run; `prepare` puts the server back in the state the run starts from, before the
    diagnostic rerun that names the errors (it is the caller's to call before this run)."""
    output = wrk_output(url, script, duration=duration, connections=connections, threads=threads)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latencies = {percent: float(value) * UNITS[unit] for percent, value, unit in LATENCY.findall(output)}
    errors_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    answers = int(errors_match.group(1)) if errors_match else 0
    socket_counts = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, socket_errors.groups()), strict=True))
        if socket_errors
        else {}
    )
    detail = ", ".join(
        f"{count} {kind}"
        for kind, count in [("non-2xx/3xx answers", answers), *socket_counts.items()]
        if count
    )
    if answers:
        if prepare is not None:
            prepare()
        detail += error_answer_sample(url, script, connections=connections, threads=threads)
    errors = answers + sum(socket_counts.values())
    return Measurement(name, rate, latencies.get("50", 0.0), latencies.get("99", 0.0), errors, detail)


def error_answer_sample(url: str, script: str, *, connections: int, threads: int) -> str:
    """Run the endpoint again briefly with a script that prints each 4xx/5xx answer, and name the
    most common one. Kept out of the measured run: a Lua response hook makes wrk parse every body."""
    output = wrk_output(
        url, script + REPORT_ERROR_ANSWERS, duration=3, connections=connections, threads=threads
    )
    refusals = Counter(
        line[len("ERROR-ANSWER ") :] for line in output.splitlines() if line.startswith("ERROR-ANSWER ")
    )
    if not refusals:
        return "; none in a 3 s rerun"
    answer, count = refusals.most_common(1)[0]
    return f"; most common in a 3 s rerun ({count}×): {answer}"


# Appended to a diagnostic rerun's script: each 4xx/5xx answer is printed with its body, after the
# script's own `response` (if any) has seen it.
REPORT_ERROR_ANSWERS = r"""
local measured_response = response
function response(status, headers, body)
  if measured_response then
    measured_response(status, headers, body)
  end
  if status >= 400 then
    io.write("ERROR-ANSWER " .. status .. " " .. string.sub(string.gsub(body, "\n", " "), 1, 200) .. "\n")
  end
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)


def get_script(headers: dict[str, str]) -> str:
    lines = [f"wrk.headers[{lua_string(key)}] = {lua_string(value)}" for key, value in headers.items()]
    return "\n".join(lines) + "\n"


def post_script(body: str, headers: dict[str, str]) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + get_script(headers)
    )


def create_script(project_id: int, key: str) -> str:
    return f"""
local counter = 0
-- `tag` is a global that setup() gives each thread (a local here would hide it).
function setup(thread)
  thread:set("tag", tostring(math.random(1, 1000000000)))
end
function request()
  counter = counter + 1
  local body = '{{"name": "bench ' .. tag .. '-' .. counter .. '", "feature_flag_key": "bench-' .. tag .. '-' .. counter .. '"}}'
  return wrk.format("POST", "/api/projects/{project_id}/experiments/",
    {{["Authorization"] = "Bearer {key}", ["Content-Type"] = "application/json"}}, body)
end
"""


def cycle_script(project_id: int, key: str, experiment_ids: list[int]) -> str:
    """Each wrk thread (one connection each: `measure` runs as many threads as connections) launches
    and resets its own experiment in turn. The turn moves when an answer arrives, not when a request
    is made: wrk calls `request()` once on the first thread before sending anything (to check the
    script), which with a request counter made that thread's first request a reset of a draft."""
    ids = ", ".join(str(experiment_id) for experiment_id in experiment_ids)
    return f"""
local ids = {{{ids}}}
local next_index = 0
function setup(thread)
  next_index = next_index + 1
  thread:set("experiment_id", ids[next_index])
end
local action = "launch"
function request()
  return wrk.format("POST", "/api/projects/{project_id}/experiments/" .. experiment_id .. "/" .. action .. "/",
    {{["Authorization"] = "Bearer {key}", ["Content-Type"] = "application/json"}}, "")
end
-- A refused launch means the experiment is launched, a refused reset that it is a draft: either way
-- the other action comes next.
function response(status, headers, body)
  action = (action == "launch") and "reset" or "launch"
end
"""


def seed(api: Api, project_id: int) -> dict:
    """100 experiments (with metrics and a holdout on some), their flags, 40 of them launched."""
    holdout = api.call(
        "POST",
        f"/api/projects/{project_id}/experiment_holdouts/",
        {"name": "Bench holdout", "filters": [{"properties": [], "rollout_percentage": 10}]},
    )
    experiments = []
    for index in range(100):
        experiment = api.call(
            "POST",
            f"/api/projects/{project_id}/experiments/",
            {
                "name": f"Seeded experiment {index}",
                "feature_flag_key": f"seeded-{index}",
                "holdout_id": holdout["id"] if index % 10 == 0 else None,
                "metrics": [
                    {
                        "kind": "ExperimentMetric",
                        "metric_type": "mean",
                        "source": {"kind": "EventsNode", "event": "purchase"},
                    }
                ],
            },
        )
        experiments.append(experiment)
        if index < 40:
            api.call("POST", f"/api/projects/{project_id}/experiments/{experiment['id']}/launch/")
    return {"experiments": experiments, "holdout": holdout}


def seed_large_project(env: dict[str, str], project_id: int, count: int) -> None:
    """`count` experiments with their flags, inserted in bulk (seeding 100 000 through the API
    would take an hour and measure nothing the API-seeded project does not)."""
    code = f"""
import django
django.setup()
from django.db import connection
from accounts.models import Project, User
from experiments.models import Experiment
from flags.models import FeatureFlag
project = Project.objects.get(pk={project_id})
user = User.objects.filter(organization_memberships__organization=project.organization).first()
filters = {{"groups": [{{"properties": [], "rollout_percentage": 100}}],
            "multivariate": {{"variants": [{{"key": "control", "rollout_percentage": 50}},
                                          {{"key": "test", "rollout_percentage": 50}}]}}}}
batch = 5000
for start in range(0, {count}, batch):
    flags = FeatureFlag.objects.bulk_create([
        FeatureFlag(project=project, key=f"bulk-{{index}}", filters=filters, active=False, version=1, created_by=user)
        for index in range(start, min(start + batch, {count}))
    ])
    Experiment.objects.bulk_create([
        Experiment(project=project, name=f"Bulk experiment {{flag.id}}", feature_flag=flag, created_by=user,
                   status="draft", stats_config={{"method": "bayesian"}})
        for flag in flags
    ])
with connection.cursor() as cursor:
    cursor.execute("VACUUM ANALYZE")
"""
    subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "experiments_api.settings"},
        check=True,
    )


def seed_many_flags(env: dict[str, str], project_id: int, count: int) -> None:
    """`count` active flags with a property condition and a 50% rollout, inserted in bulk."""
    code = f"""
import django
django.setup()
from accounts.models import Project, User
from flags.definitions import flag_definitions_changed
from flags.models import FeatureFlag
project = Project.objects.get(pk={project_id})
user = User.objects.filter(organization_memberships__organization=project.organization).first()
FeatureFlag.objects.bulk_create([
    FeatureFlag(project=project, key=f"many-{{index}}", active=True, version=1, created_by=user, filters={{
        "groups": [{{"properties": [{{"key": "plan", "type": "person", "operator": "exact",
                                       "value": ["pro", "team"]}}], "rollout_percentage": 50}},
                   {{"properties": [], "rollout_percentage": 10}}]}})
    for index in range({count})
])
flag_definitions_changed({project_id})
"""
    subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "experiments_api.settings"},
        check=True,
    )


def count_queries(env: dict[str, str], requests: dict[str, dict]) -> dict[str, tuple[int, float]]:
    """Database queries one request of each endpoint makes (after a warm-up request; with `then`,
    that request and the ones to the paths `then` lists together), and the median in-process CPU
    time of one request in milliseconds (through Django's test client, so without the HTTP server's
    own share)."""
    code = """
import json, statistics, sys, time
import django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
specs = json.loads(sys.stdin.read())
client = Client()
counts = {}
for name, spec in specs.items():
    kwargs = {"content_type": "application/json"} if spec.get("body") is not None else {}
    headers = {("HTTP_" + key.upper().replace("-", "_")): value for key, value in spec.get("headers", {}).items()}
    method = getattr(client, spec["method"].lower())
    call = lambda: method(spec["path"], spec.get("body"), **kwargs, **headers) if spec.get("body") is not None else method(spec["path"], **headers)
    if not spec.get("once"):
        call()
    with CaptureQueriesContext(connection) as captured:
        response = call()
        for path in spec.get("then", []):
            method(path, spec.get("body"), **kwargs, **headers)
    # Read now: each request through the test client empties the connection's query log.
    query_count = len(captured)
    timings = []
    for _ in range(0 if spec.get("once") else 15):
        started = time.process_time()
        call()
        timings.append((time.process_time() - started) * 1000)
    counts[name] = (query_count, statistics.median(timings) if timings else None)
print(json.dumps(counts))
"""
    result = subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "experiments_api.settings"},
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def provision(env: dict[str, str], project_name: str) -> tuple[int, str]:
    """A project and an all-scopes key for it, through the operator command."""
    output = manage(
        env,
        "create_personal_api_key",
        "--email",
        "bench@example.com",
        "--organization-name",
        "Bench",
        "--project-name",
        project_name,
        "--label",
        project_name,
        "--replace",
    ).strip()
    project_id = int(re.search(r"project '.*?' id (\d+)", output).group(1))
    return project_id, output.splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("make bench needs wrk (Debian/Ubuntu: apt-get install wrk).")

    url = bench_database_url(BENCH_DB)
    recreate_database(url)
    port = free_port()
    env = server_environment(url, port)
    manage(env, "migrate", "--noinput")
    project_id, key = provision(env, "Bench")
    large_project_id, large_key = provision(env, "Bench large")
    many_flags_project_id, _ = provision(env, "Bench 1000 flags")
    project_secret = (
        manage(env, "rotate_project_secret_key", "--project-id", str(project_id)).strip().splitlines()[-1]
    )

    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "experiments_api.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(base, server)
        api = Api(base, key)
        project = api.call("GET", f"/api/projects/{project_id}/")
        token = project["api_token"]
        seeded = seed(api, project_id)
        print(f"Seeding {args.large} experiments in the large project…", flush=True)
        seed_large_project(env, large_project_id, args.large)
        seed_many_flags(env, many_flags_project_id, 1000)
        many_flags_token = api.call("GET", f"/api/projects/{many_flags_project_id}/")["api_token"]

        experiment = seeded["experiments"][0]
        flag_id = experiment["feature_flag"]["id"]
        flag_key = experiment["feature_flag_key"]
        cycle_ids = [
            api.call(
                "POST",
                f"/api/projects/{project_id}/experiments/",
                {"name": f"cycle {n}", "feature_flag_key": f"cycle-{n}"},
            )["id"]
            for n in range(args.connections)
        ]
        definitions_path = f"/flags/definitions?token={token}&send_cohorts"
        with urllib.request.urlopen(
            urllib.request.Request(
                base + definitions_path, headers={"Authorization": f"Bearer {project_secret}"}
            )
        ) as response:
            etag = response.headers["ETag"]

        auth = {"Authorization": f"Bearer {key}"}
        one_flag = json.dumps(
            {"api_key": token, "distinct_id": "user-42", "flag_keys_to_evaluate": [flag_key]}
        )
        all_flags = json.dumps({"api_key": token, "distinct_id": "user-42"})
        many_one_flag = json.dumps(
            {
                "api_key": many_flags_token,
                "distinct_id": "user-42",
                "person_properties": {"plan": "pro"},
                "flag_keys_to_evaluate": ["many-500"],
            }
        )
        many_all_flags = json.dumps(
            {"api_key": many_flags_token, "distinct_id": "user-42", "person_properties": {"plan": "pro"}}
        )
        experiments_path = f"/api/projects/{project_id}/experiments/"
        endpoints = [
            ("GET /_liveness", "/_liveness", get_script({}), {"method": "GET", "path": "/_liveness"}),
            ("GET /_health", "/_health", get_script({}), {"method": "GET", "path": "/_health"}),
            (
                "GET /api/users/@me/",
                "/api/users/@me/",
                get_script(auth),
                {"method": "GET", "path": "/api/users/@me/", "headers": auth},
            ),
            (
                "GET experiment",
                f"{experiments_path}{experiment['id']}/",
                get_script(auth),
                {"method": "GET", "path": f"{experiments_path}{experiment['id']}/", "headers": auth},
            ),
            (
                "GET experiments (100)",
                f"{experiments_path}?limit=100",
                get_script(auth),
                {"method": "GET", "path": f"{experiments_path}?limit=100", "headers": auth},
            ),
            (
                "GET feature flag",
                f"/api/projects/{project_id}/feature_flags/{flag_id}/",
                get_script(auth),
                {
                    "method": "GET",
                    "path": f"/api/projects/{project_id}/feature_flags/{flag_id}/",
                    "headers": auth,
                },
            ),
            (
                "GET feature flags (100)",
                f"/api/projects/{project_id}/feature_flags/?limit=100",
                get_script(auth),
                {
                    "method": "GET",
                    "path": f"/api/projects/{project_id}/feature_flags/?limit=100",
                    "headers": auth,
                },
            ),
            (
                "POST /flags (one key)",
                "/flags/?v=2",
                post_script(one_flag, {}),
                {"method": "POST", "path": "/flags/?v=2", "body": json.loads(one_flag)},
            ),
            (
                "POST /flags (all flags)",
                "/flags/?v=2",
                post_script(all_flags, {}),
                {"method": "POST", "path": "/flags/?v=2", "body": json.loads(all_flags)},
            ),
            (
                "POST /flags (one key, 1000 flags)",
                "/flags/?v=2",
                post_script(many_one_flag, {}),
                {"method": "POST", "path": "/flags/?v=2", "body": json.loads(many_one_flag)},
            ),
            (
                "POST /flags (all, 1000 flags)",
                "/flags/?v=2",
                post_script(many_all_flags, {}),
                {"method": "POST", "path": "/flags/?v=2", "body": json.loads(many_all_flags)},
            ),
            (
                "GET definitions (304)",
                definitions_path,
                get_script({"Authorization": f"Bearer {project_secret}", "If-None-Match": etag}),
                {
                    "method": "GET",
                    "path": definitions_path,
                    "headers": {"Authorization": f"Bearer {project_secret}", "If-None-Match": etag},
                    "expect": 304,
                },
            ),
            (
                "GET definitions (304, personal key)",
                definitions_path,
                get_script({**auth, "If-None-Match": etag}),
                {
                    "method": "GET",
                    "path": definitions_path,
                    "headers": {**auth, "If-None-Match": etag},
                    "expect": 304,
                },
            ),
            # Writes last: they change the project's flags, which the reads above must not see.
            (
                "POST experiment",
                experiments_path,
                create_script(project_id, key),
                {
                    "method": "POST",
                    "path": experiments_path,
                    "headers": auth,
                    "body": {"name": "q", "feature_flag_key": "q-count"},
                    "once": True,
                },
            ),
            (
                "POST launch→reset cycle",
                experiments_path,
                cycle_script(project_id, key, cycle_ids),
                {
                    "method": "POST",
                    "path": f"{experiments_path}{cycle_ids[0]}/launch/",
                    "then": [f"{experiments_path}{cycle_ids[0]}/reset/"],
                    "headers": auth,
                    "body": {},
                    "once": True,
                },
            ),
        ]

        # Counted before the timed runs: the write rounds add flags to the seeded project.
        flag_counts = {
            "POST /flags (one key)": project_flag_count(url, project_id),
            "POST /flags (all, 1000 flags)": project_flag_count(url, many_flags_project_id),
        }
        large_list = f"/api/projects/{large_project_id}/experiments/?limit=100"
        large_auth = {"Authorization": f"Bearer {large_key}"}

        # Every round of reads first, then every round of writes: the writes change the project's flags.
        reads = [endpoint for endpoint in endpoints if not endpoint[0].startswith("POST experiment")]
        reads = [endpoint for endpoint in reads if "cycle" not in endpoint[0]]
        reads.append((LARGE_LIST, large_list, get_script(large_auth), {}))
        writes = [endpoint for endpoint in endpoints if endpoint not in reads]
        if args.only:
            reads, writes = selected(reads, args.only), selected(writes, args.only)
        measured = [
            name for name, *_ in [*endpoints, *reads] if any(name == item[0] for item in [*reads, *writes])
        ]
        rounds: dict[str, list[Measurement]] = {}
        for phase in (reads, writes):
            for round_number in range(1, args.rounds + 1):
                print(f"Round {round_number} of {args.rounds}", flush=True)
                for endpoint in phase:
                    prepare = None
                    if "cycle" in endpoint[0]:
                        prepare = partial(reset_to_draft, api, project_id, cycle_ids)
                        prepare()
                    rounds.setdefault(endpoint[0], []).append(measure(base, endpoint, args, prepare))
        results = [median_measurement(rounds[name]) for name in dict.fromkeys(measured)]
        large = results.pop() if results[-1].name == LARGE_LIST else None
        # Counted after the timed runs: counting makes writes of its own.
        queries = count_queries(env, {name: spec for name, _, _, spec in endpoints})
        list_queries = count_queries(
            env,
            {
                "100": {"method": "GET", "path": f"{experiments_path}?limit=100", "headers": auth},
                "large": {"method": "GET", "path": large_list, "headers": large_auth},
            },
        )
        for measurement in results:
            measurement.queries, measurement.server_ms = queries.get(measurement.name, (None, None))
        if large is not None:
            large.queries, large.server_ms = list_queries["large"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    report(results, large, list_queries, args, flag_counts)


def selected(endpoints: list[tuple], names: list[str]) -> list[tuple]:
    """The endpoints `--only` names (by part of their name), with the floor and `/_health` first."""
    always = ("GET /_liveness", "GET /_health")
    return [
        endpoint
        for endpoint in endpoints
        if endpoint[0] in always or any(name in endpoint[0] for name in names)
    ]


def project_flag_count(url: str, project_id: int) -> int:
    """How many flags `/flags` evaluates for the project (its non-deleted flags)."""
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT count(*) FROM flags_featureflag WHERE project_id = %s AND NOT deleted", [project_id]
        ).fetchone()[0]


def reset_to_draft(api: Api, project_id: int, experiment_ids: list[int]) -> None:
    """Put the cycle's experiments back to draft, so each round starts with a launch that succeeds."""
    for experiment_id in experiment_ids:
        with contextlib.suppress(urllib.error.HTTPError):  # already a draft
            api.call("POST", f"/api/projects/{project_id}/experiments/{experiment_id}/reset/")


def measure(
    base: str,
    endpoint: tuple[str, str, str, dict],
    args: argparse.Namespace,
    prepare: Callable[[], None] | None = None,
) -> Measurement:
    name, path, script, spec = endpoint
    expected = spec.get("expect")
    if expected is not None and (answered := answer_status(base + path, spec["headers"])) != expected:
        raise SystemExit(f"{name} answered {answered} before its run, not {expected}.")
    threads = args.connections if "cycle" in name else 2
    measurement = run_wrk(
        name,
        base + path,
        script,
        duration=args.duration,
        connections=args.connections,
        threads=threads,
        prepare=prepare,
    )
    print(f"  measured {name}: {measurement.requests_per_second:.0f} req/s", flush=True)
    return measurement


def median_measurement(rounds: list[Measurement]) -> Measurement:
    """The round with the median throughput (its latencies with it), with every round's errors."""
    ordered = sorted(rounds, key=lambda measurement: measurement.requests_per_second)
    middle = ordered[len(ordered) // 2]
    errors = sum(measurement.errors for measurement in rounds)
    detail = "; ".join(measurement.error_detail for measurement in rounds if measurement.error_detail)
    return Measurement(middle.name, middle.requests_per_second, middle.p50_ms, middle.p99_ms, errors, detail)


def report(
    results: list[Measurement],
    large: Measurement | None,
    list_queries: dict[str, tuple[int, float]],
    args: argparse.Namespace,
    flag_counts: dict[str, int],
) -> None:
    floor = results[0].requests_per_second
    print()
    print(
        f"wrk, {args.connections} connections, {args.duration}s per endpoint, median of {args.rounds} "
        f"round(s), gunicorn 2 workers, PostgreSQL"
    )
    print(
        f"{'endpoint':34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7} {'× floor':>7} "
        f"{'Unleash':>7} {'Flagsm.':>7} {'queries':>7} {'errors':>6}  target"
    )
    failures = 0
    measurements = [*results, large] if large is not None else results
    for measurement in measurements:
        ratio = measurement.requests_per_second / floor if floor else 0.0
        target = TARGETS.get(measurement.name)
        verdict = ""
        if target is not None:
            passed = ratio >= target
            failures += not passed
            verdict = f"≥ {target:.2f}× {'PASS' if passed else 'FAIL'}"
        queries = "" if measurement.queries is None else str(measurement.queries)
        server_ms = "" if measurement.server_ms is None else f"{measurement.server_ms:.2f}"
        unleash, flagsmith = PEERS.get(measurement.name, ("", ""))
        print(
            f"{measurement.name:34} {measurement.requests_per_second:7.0f} {measurement.p50_ms:7.2f} "
            f"{measurement.p99_ms:7.2f} {server_ms:>7} {ratio:7.2f} {unleash:>7} {flagsmith:>7} "
            f"{queries:>7} {measurement.errors:6d}  {verdict}"
        )
    errored = [f"{item.name} ({item.error_detail})" for item in measurements if item.errors]
    small = next((item for item in results if item.name == "GET experiments (100)"), None)
    if large is not None and small is not None:
        failures += list_report(large, small, list_queries, args)
    print(
        f"/flags evaluated against the seeded project's {flag_counts['POST /flags (one key)']} flags "
        f"(the first two /flags rows) and {flag_counts['POST /flags (all, 1000 flags)']} flags (the "
        "last two); `cpu ms` is one request's CPU time in-process (Django only, no gunicorn or wrk); "
        "the launch→reset row counts launches and resets each as a request, its queries are those of "
        "one launch and one reset together"
    )
    if errored:
        print(f"errors: {'; '.join(errored)}")
    print(f"\n{failures} target(s) failed." if failures else "\nEvery target passed.")


def list_report(
    large: Measurement,
    small: Measurement,
    list_queries: dict[str, tuple[int, float]],
    args: argparse.Namespace,
) -> int:
    """Print the list latency and query count with 100 and with many experiments; the failures."""
    latency_ratio = large.p50_ms / small.p50_ms if small.p50_ms else float("inf")
    latency_pass = latency_ratio <= 1.5
    constant = list_queries["100"][0] == list_queries["large"][0]
    print()
    print(
        f"list p50 with {args.large} experiments / with 100: {large.p50_ms:.2f} / {small.p50_ms:.2f} ms = "
        f"{latency_ratio:.2f}×  (target ≤ 1.50×) {'PASS' if latency_pass else 'FAIL'}"
    )
    print(
        f"list queries per request with 100 and {args.large} experiments: {list_queries['100'][0]} and "
        f"{list_queries['large'][0]}  (target: equal) {'PASS' if constant else 'FAIL'}"
    )
    return (not latency_pass) + (not constant)


if __name__ == "__main__":
    main()
