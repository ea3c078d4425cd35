"""What the Docker image and docker-compose rely on, checked without Docker: the build context
(.dockerignore), the Dockerfile's inputs, the compose file's settings, and the lock files."""

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.urls import resolve
from packaging.requirements import Requirement

from experiments_api.health import readiness

ROOT = Path(__file__).resolve().parents[2]


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """(excludes, compiled pattern) per .dockerignore line, with Docker's semantics: patterns are
    anchored at the context root, `*` stays within a path segment, `**` spans segments."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        line = line.lstrip("!").strip("/")
        regex = ""
        index = 0
        while index < len(line):
            if line.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif line.startswith("**", index):
                regex, index = regex + ".*", index + 2
            elif line[index] == "*":
                regex, index = regex + "[^/]*", index + 1
            elif line[index] == "?":
                regex, index = regex + "[^/]", index + 1
            else:
                regex, index = regex + re.escape(line[index]), index + 1
        patterns.append((excludes, re.compile(regex + "$")))
    return patterns


def is_excluded(relative: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    """The last matching pattern decides; a pattern matching a parent directory covers its files."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: length + 1]) for length in range(len(parts))]
    excluded = False
    for excludes, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


def build_context_files() -> set[str]:
    """Every file `docker build .` would send, as paths relative to the project root."""
    patterns = dockerignore_patterns()
    prunable = all(excludes for excludes, _ in patterns)
    files = set()
    for directory, subdirectories, names in os.walk(ROOT):
        relative_directory = Path(directory).relative_to(ROOT)
        if prunable:
            subdirectories[:] = [
                name
                for name in subdirectories
                if not is_excluded((relative_directory / name).as_posix(), patterns)
            ]
        for name in names:
            relative = (relative_directory / name).as_posix()
            if not is_excluded(relative, patterns):
                files.add(relative)
    return files


def project_packages() -> list[str]:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    return sorted(pattern.rstrip("*") for pattern in include)


def local_apps() -> list[str]:
    return [app for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()]


@pytest.fixture(scope="module")
def context_files() -> set[str]:
    return build_context_files()


def test_every_python_file_of_every_app_is_in_the_image(context_files):
    """The image once lacked `events/` (a hand-written COPY list): now every package ships."""
    packages = set(project_packages()) | {app.split(".")[0] for app in local_apps()}
    assert "events" in packages
    for package in sorted(packages):
        sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / package).rglob("*.py")}
        sources = {source for source in sources if "__pycache__" not in source}
        assert f"{package}/__init__.py" in sources
        assert sources <= context_files, sorted(sources - context_files)


def test_what_the_dockerfile_needs_is_in_the_context_and_nothing_private_is(context_files):
    for needed in ("manage.py", "gunicorn.conf.py", "pyproject.toml", "requirements/base.lock"):
        assert needed in context_files
    for private in (".git", ".venv", "db.sqlite3", "staticfiles"):
        assert not any(path == private or path.startswith(private + "/") for path in context_files)


def test_dockerfile_installs_from_the_lock_and_copies_the_whole_context(context_files):
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", dockerfile, flags=re.MULTILINE)
    assert (".", ".") in copies
    for source, _ in copies:
        assert source == "." or source in context_files
    assert "pip install -r requirements/base.lock" in dockerfile
    assert not re.search(r"pip install (?!-r )", dockerfile), "every pip install must come from the lock"
    command = re.search(r"^CMD (.+)$", dockerfile, flags=re.MULTILINE).group(1)
    assert "experiments_api.wsgi:application" in command and "-c gunicorn.conf.py" in command
    # The only secret in the image's build is one generated for collectstatic, never a literal.
    assert all(value.startswith('"$(python') for value in re.findall(r"SECRET_KEY=(\S+)", dockerfile))
    assert "ENV SECRET_KEY" not in dockerfile


def compose_app() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["app"]


def test_compose_requires_a_secret_and_keeps_debug_off():
    environment = compose_app()["environment"]
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert str(environment.get("DEBUG", "false")).lower() in ("false", "0")
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def test_compose_health_check_probes_the_readiness_endpoint():
    probe = " ".join(compose_app()["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:8000(/\S*?)'", probe).group(1)
    assert resolve(url).func is readiness
    assert any(re.fullmatch(pattern, url.lstrip("/")) for pattern in settings.SECURE_REDIRECT_EXEMPT)


def pins(lock: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_lock_files_pin_what_pyproject_asks_for():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base, dev = pins("base.lock"), pins("dev.lock")
    for lock, requirements in (
        (base, project["dependencies"]),
        (dev, project["dependencies"] + project["optional-dependencies"]["dev"]),
    ):
        for raw in requirements:
            requirement = Requirement(raw)
            name = requirement.name.lower().replace("_", "-")
            assert name in lock, f"{name} is not in the lock file: run `make lock`"
            assert requirement.specifier.contains(lock[name], prereleases=True), (name, lock[name])
    assert {name: dev[name] for name in base} == base, "dev.lock must pin base.lock's versions"
