# Two commands: `make run` serves a demo on http://127.0.0.1:8000 with a results worker beside it,
# `make test` runs lint (ruff, lint-imports) and the test suite against PostgreSQL. Both create .venv themselves; only Python 3.11 is needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate clean bench bench-backends fuzz lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies come from the lock files (the Docker image installs requirements/base.lock too);
# the project itself is installed editable on top, without resolving anything again.
$(VENV)/.installed: requirements/base.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements/base.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed

# Re-resolve the lock files after changing dependencies in pyproject.toml (dev pins follow base's).
LOCK_FLAGS := --quiet --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile $(LOCK_FLAGS) --output-file requirements/base.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev --constraint requirements/base.lock \
		--output-file requirements/dev.lock pyproject.toml

# The demo's conveniences, switched on explicitly: DEBUG (with its development secret) and plain HTTP.
run: export DEBUG ?= true
run: export SECURE_SSL_REDIRECT ?= false
run: $(VENV)/.installed
	WITH_POSTGRES_OPTIONAL=1 HOST=$(HOST) PORT=$(PORT) scripts/with_postgres.sh experiments_api scripts/run_demo.sh

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	scripts/with_postgres.sh experiments_api $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: export DEBUG ?= true
migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache staticfiles *.egg-info

bench: $(VENV)/.installed-dev
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = "0" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || { echo "make bench needs wrk (apt-get install wrk)"; exit 2; }
	scripts/with_postgres.sh experiments_api_bench $(BIN)/python bench/run.py $(BENCH_ARGS)
	scripts/with_postgres.sh experiments_api_bench_results $(BIN)/python bench/results.py $(RESULTS_BENCH_ARGS)

# Results on PostgreSQL and on ClickHouse (chDB in-process) side by side; BENCH_ARGS="--events 10000000".
bench-backends: $(VENV)/.installed-dev
	scripts/with_postgres.sh experiments_api_bench $(BIN)/python bench/results_backends.py $(BENCH_ARGS)

fuzz: $(VENV)/.installed-dev
	scripts/with_postgres.sh experiments_api_fuzz $(BIN)/python scripts/fuzz.py $(FUZZ_ARGS)
