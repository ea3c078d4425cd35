"""`make fuzz`: schemathesis against this server's own OpenAPI schema.

Starts gunicorn on a fresh PostgreSQL database with a real all-scopes key, seeds a project with
experiments in every state, a holdout, a saved metric, an encrypted remote-config flag, an
asynchronous query run and an approval policy (so the 409 path is exercised too), then runs schemathesis over every operation of `/api/schema/` — examples, coverage
(positive and negative), fuzzing and stateful phases — checking for server errors and for
conformance of status codes, content types and response bodies to the schema. A fixed seed and a
bounded example count keep a CI run to a few minutes. Exits with schemathesis's status.

The key-management endpoints (`/api/personal_api_keys/`) are left out: with key authentication
they answer 403 by design (only a signed-in session manages keys), so there is nothing to fuzz.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def maintenance_url() -> str:
    parsed = urllib.parse.urlparse(os.environ["DATABASE_URL"])
    return urllib.parse.urlunparse(parsed._replace(path="/postgres"))


def database_url(name: str) -> str:
    parsed = urllib.parse.urlparse(os.environ["DATABASE_URL"])
    return urllib.parse.urlunparse(parsed._replace(path=f"/{name}"))


def create_database(name: str) -> None:
    with psycopg.connect(maintenance_url(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(maintenance_url(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def call(base: str, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as refused:
        if refused.code == 409:  # the approval gate answers with the change request it stored
            return json.loads(refused.read())
        raise


def seed(base: str, key: str, project_id: int, user_id: int) -> dict[str, int]:
    """Objects in every state, so operations on existing ids are reached, not only 404s. Returns
    the ids that operations without a link from a create response are pointed at."""
    api = f"/api/projects/{project_id}"
    holdout = call(
        base,
        key,
        "POST",
        f"{api}/experiment_holdouts/",
        {"name": "Holdout", "filters": [{"rollout_percentage": 10}]},
    )
    call(
        base,
        key,
        "POST",
        f"{api}/experiment_saved_metrics/",
        {
            "name": "Revenue",
            "query": {
                "kind": "ExperimentMetric",
                "metric_type": "mean",
                "source": {"kind": "EventsNode", "event": "purchase"},
            },
        },
    )
    experiment_ids = {}
    for index, steps in enumerate(
        [[], ["launch"], ["launch", "pause"], ["launch", "end"], ["launch", "end", "archive"]]
    ):
        experiment = call(
            base,
            key,
            "POST",
            f"{api}/experiments/",
            {
                "name": f"Seed {index}",
                "feature_flag_key": f"seed-{index}",
                "holdout_id": holdout["id"] if index == 0 else None,
            },
        )
        for step in steps:
            call(base, key, "POST", f"{api}/experiments/{experiment['id']}/{step}/")
        experiment_ids[steps[-1] if steps else "draft"] = experiment["id"]
    call(
        base,
        key,
        "POST",
        f"{api}/feature_flags/",
        {"key": "plain-flag", "filters": {"groups": [{"rollout_percentage": 50}]}},
    )
    remote_config = call(
        base,
        key,
        "POST",
        f"{api}/feature_flags/",
        {
            "key": "remote-config",
            "is_remote_configuration": True,
            "has_encrypted_payloads": True,
            "filters": {
                "groups": [{"properties": [], "rollout_percentage": 100}],
                "payloads": {"true": {"theme": "dark"}},
            },
        },
    )
    call(
        base,
        key,
        "POST",
        f"{api}/approval_policies/",
        {"action_key": "experiment.reset", "approver_config": {"quorum": 1, "users": [user_id]}},
    )
    running = experiment_ids["launch"]
    cohort = call(
        base,
        key,
        "POST",
        f"{api}/experiments/{experiment_ids['pause']}/create_exposure_cohort_for_experiment/",
    )
    gated = call(base, key, "POST", f"{api}/experiments/{running}/reset/")
    async_run = call(
        base,
        key,
        "POST",
        f"{api}/query/",
        {
            "query": {"kind": "ExperimentExposureQuery", "experiment_id": running},
            "refresh": "force_async",
        },
    )
    return {
        "project": project_id,
        "cohort": cohort["cohort"]["id"],
        "change_request": gated["change_request_id"],
        "remote_config": remote_config["id"],
        "query_run": async_run["query_status"]["id"],
        "running": running,
        "paused": experiment_ids["pause"],
        "ended": experiment_ids["end"],
        "archived": experiment_ids["archive"],
    }


def operation_parameters(ids: dict[str, int]) -> str:
    """schemathesis.toml: the project id everywhere, and seeded ids for the operations no link
    reaches (they would otherwise only ever see 404)."""
    experiment = "/api/projects/{project_id}/experiments/{id}/"
    targets = [
        ("/api/projects/{id}/", ids["project"]),
        ("/api/projects/{project_id}/cohorts/{id}/", ids["cohort"]),
        ("/api/projects/{project_id}/feature_flags/{id}/remote_config/", ids["remote_config"]),
        ("/api/projects/{project_id}/query/{id}/", ids["query_run"]),
        *(
            (f"/api/projects/{{project_id}}/change_requests/{{id}}/{suffix}", ids["change_request"])
            for suffix in ("", "approve/", "reject/", "cancel/")
        ),
        *(
            (experiment + suffix, ids["running"])
            for suffix in (
                "timeseries_results/",
                "recalculate_timeseries/",
                "ship_variant/",
                "create_exposure_cohort_for_experiment/",
                "end/",
            )
        ),
        (experiment + "resume/", ids["paused"]),
        (experiment + "archive/", ids["ended"]),
        (experiment + "unarchive/", ids["archived"]),
    ]
    lines = ["[parameters]", f'"path.project_id" = "{ids["project"]}"']
    for path, object_id in targets:
        lines += [
            "",
            "[[operations]]",
            f'include-path = "{path}"',
            f'parameters = {{ "path.id" = "{object_id}" }}',
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    args = parser.parse_args()

    # A name of its own per run, so two runs on one server never share or drop each other's data.
    database = f"experiments_api_fuzz_{os.getpid()}_{int(time.time())}"
    create_database(database)
    try:
        return fuzz(args, database_url(database))
    finally:
        drop_database(database)


def fuzz(args: argparse.Namespace, url: str) -> int:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SECRET_KEY": "fuzz-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RATE_LIMIT_ENABLED": "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESS_LOG": "",
        "GUNICORN_TIMEOUT": "60",
    }
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    output = subprocess.run(
        [
            PYTHON,
            "manage.py",
            "create_personal_api_key",
            "--email",
            "fuzz@example.com",
            "--organization-name",
            "Fuzz",
            "--project-name",
            "Fuzz",
            "--label",
            "fuzz",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    project_id = int(re.search(r"project '.*?' id (\d+)", output).group(1))
    key = output.splitlines()[-1]

    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "experiments_api.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/_liveness", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("gunicorn did not start", file=sys.stderr)
                    return 2
                time.sleep(0.2)
        user_id = call(base, key, "GET", "/api/users/@me/")["id"]
        ids = seed(base, key, project_id, user_id)
        with tempfile.TemporaryDirectory() as directory:
            config = Path(directory) / "schemathesis.toml"
            config.write_text(operation_parameters(ids))
            command = [
                str(Path(PYTHON).with_name("schemathesis")),
                "--config-file",
                str(config),
                "--no-color",
                "run",
                f"{base}/api/schema/",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                CHECKS,
                "--phases",
                args.phases,
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--workers",
                "2",
                "--request-timeout",
                "30",
                "--exclude-path-regex",
                "^/api/personal_api_keys",
                "--suppress-health-check",
                "all",
            ]
            return subprocess.run(command, cwd=ROOT).returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
