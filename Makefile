# Two commands: `make run` serves a demo on http://127.0.0.1:8000, `make test` runs lint and the
# test suite against PostgreSQL. Both create .venv themselves; only Python 3.11 is needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate clean bench bench-backends fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py demo_credentials --base-url http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/with_postgres.sh experiments_api $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles *.egg-info

bench: $(VENV)/.installed-dev
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = "0" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || { echo "make bench needs wrk (apt-get install wrk)"; exit 2; }
	scripts/with_postgres.sh experiments_api_bench $(BIN)/python bench/run.py $(BENCH_ARGS)
	scripts/with_postgres.sh experiments_api_bench_results $(BIN)/python bench/results.py $(RESULTS_BENCH_ARGS)

# Results on PostgreSQL and on ClickHouse (chDB in-process) side by side; BENCH_ARGS="--events 10000000".
bench-backends: $(VENV)/.installed-dev
	scripts/with_postgres.sh experiments_api_bench $(BIN)/python bench/results_backends.py $(BENCH_ARGS)

fuzz: $(VENV)/.installed-dev
	scripts/with_postgres.sh experiments_api_fuzz $(BIN)/python scripts/fuzz.py $(FUZZ_ARGS)
