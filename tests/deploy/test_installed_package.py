"""The project as it ships, outside this checkout's editable install: a fresh virtualenv with only
the locked dependencies runs the Docker image's build step from a copy of the build context, and
the project's wheel, installed non-editable, checks and migrates a PostgreSQL database. A module
missing from the image or the wheel fails here, not in production."""

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.deploy.test_image_files import build_context_files

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_SECONDS = 900


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def locked_venv(tmp_path_factory) -> Path:
    """A virtualenv holding exactly requirements/base.lock: what the image installs."""
    venv = tmp_path_factory.mktemp("locked") / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=ROOT)
    python = venv / "bin" / "python"
    run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements" / "base.lock")],
        cwd=ROOT,
    )
    return python


def production_environment(**values: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "SECURE_", "DEBUG", "SECRET_KEY", "PYTHONPATH", "REDIS_URL"))
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50), DJANGO_SETTINGS_MODULE="experiments_api.settings", **values
    )
    return env


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """An empty database of its own on the test server, dropped afterwards."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_installed"
    server = {
        "host": settings.get("HOST") or "127.0.0.1",
        "port": settings.get("PORT") or 5432,
        "user": settings["USER"],
        "password": settings.get("PASSWORD") or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{server['password']}" if server["password"] else ""
    try:
        yield f"postgres://{server['user']}{password}@{server['host']}:{server['port']}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_build_context(target_root: Path) -> Path:
    """The files `docker build .` sends, copied: a clean tree, free of this checkout's build leftovers."""
    for relative in build_context_files():
        target = target_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    return target_root


def test_the_image_build_step_runs_from_the_build_context(locked_venv, tmp_path):
    app = copy_build_context(tmp_path / "app")
    env = production_environment(ALLOWED_HOSTS="experiments.example.com")

    run([str(locked_venv), "manage.py", "collectstatic", "--noinput", "--verbosity", "0"], cwd=app, env=env)
    output = run(
        [str(locked_venv), "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=app, env=env
    )

    assert "no issues" in output
    assert (app / "staticfiles" / "admin").is_dir()
    assert (app / "staticfiles" / "drf_spectacular_sidecar").is_dir()


def test_the_wheel_installs_checks_and_migrates(locked_venv, tmp_path, scratch_database):
    wheels = tmp_path / "wheels"
    source = copy_build_context(tmp_path / "source")
    pip_wheel = ["-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)]
    run([str(locked_venv), *pip_wheel], cwd=source)
    (wheel,) = wheels.glob("experiments_api-*.whl")
    run([str(locked_venv), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], cwd=tmp_path)
    run([str(locked_venv), "-m", "pip", "check"], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = production_environment(DATABASE_URL=scratch_database)

    location = run(
        [str(locked_venv), "-c", "import events, experiments_api; print(experiments_api.__file__)"],
        cwd=elsewhere,
        env=env,
    )
    assert "site-packages" in location and str(ROOT) not in location
    run([str(locked_venv), "-m", "django", "check"], cwd=elsewhere, env=env)
    templates = sorted(
        str(path.relative_to(app_templates))
        for app_templates in ROOT.glob("*/templates")
        for path in app_templates.rglob("*.html")
    )
    assert templates
    load_templates = (
        "import django, sys; django.setup(); from django.template.loader import get_template; "
        "[get_template(name) for name in sys.argv[1:]]"
    )
    run([str(locked_venv), "-c", load_templates, *templates], cwd=elsewhere, env=env)
    run([str(locked_venv), "-m", "django", "migrate", "--noinput"], cwd=elsewhere, env=env)
    pending = run([str(locked_venv), "-m", "django", "showmigrations", "--plan"], cwd=elsewhere, env=env)
    assert "[X]" in pending and "[ ]" not in pending
