# Two commands for a fresh machine: `make run` and `make test`. Everything else builds on them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
INSTALLED := $(VENV)/.installed
# flask-greenlet, the bridge, is a distribution of its own: its tests run in a virtualenv
# that holds only it and its test tools, to prove it needs nothing of the app.
LIB := flask-greenlet
LIB_BIN := $(LIB)/.venv/bin
LIB_INSTALLED := $(LIB)/.venv/.installed

.PHONY: install run test test-fast test-app test-greenlet lint bench bench-adopters bench-quick bench-login-storm bench-overload bench-fanout bench-write-scaling cost cost-check loadtest rolling-deploy replicas lock clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./$(LIB) -e '.[dev,loadtest]'
	touch $@

$(LIB_INSTALLED): $(LIB)/pyproject.toml constraints.txt
	test -x $(LIB_BIN)/python || $(PYTHON) -m venv $(LIB)/.venv
	$(LIB_BIN)/python -m pip install --quiet --upgrade pip
	$(LIB_BIN)/python -m pip install --quiet -c constraints.txt -e ./$(LIB) --group ./$(LIB)/pyproject.toml:test
	touch $@

install: $(INSTALLED)

run: install  ## serve on http://$(HOST):$(PORT), on SQLite unless DATABASE_URL says otherwise
	$(BIN)/alembic upgrade head
	$(BIN)/uvicorn asgi:app --host $(HOST) --port $(PORT)

test: test-greenlet test-app  ## both test trees: the bridge's on its own, then the app's on SQLite and PostgreSQL

test-greenlet: $(LIB_INSTALLED)  ## flask-greenlet alone: its tests, other people's suites through it, its wheel
	cd $(LIB) && .venv/bin/pytest

test-app: install  ## the app's suite, on SQLite and on PostgreSQL
	$(BIN)/pytest

test-fast: install  ## the app's suite on SQLite, in process: no PostgreSQL, no servers (under a minute)
	$(BIN)/pytest -m "not postgres and not processes"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r src $(LIB)/src

$(VENV)/.bench-installed: $(INSTALLED)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,loadtest,bench]'
	touch $@

bench: $(VENV)/.bench-installed  ## this app against FastAPI, Quart, sync Flask and raw asyncpg; then the live fan-out
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/fanout.py

$(LIB)/.venv/.bench-installed: $(LIB_INSTALLED)
	$(LIB_BIN)/python -m pip install --quiet -c constraints.txt --group ./$(LIB)/pyproject.toml:bench
	touch $@

bench-adopters: $(LIB)/.venv/.bench-installed  ## flask-greenlet against a2wsgi, asgiref, gunicorn threads and Quart
	cd $(LIB) && .venv/bin/python bench/adopters.py $(BENCH_ARGS)

cost: install  ## instructions a request on each hot endpoint, under valgrind (about 100 s)
	$(BIN)/python bench/cost.py

cost-check: install  ## fail if a hot endpoint costs over 10 % more instructions than bench/cost-baseline.json
	$(BIN)/python bench/cost.py --check bench/cost-baseline.json

bench-quick: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

bench-login-storm: $(VENV)/.bench-installed  ## do 30 clients signing in starve the reads?
	$(BIN)/python bench/login_storm.py

bench-overload: $(VENV)/.bench-installed  ## three times capacity, open loop: shed fast, serve fast
	$(BIN)/python bench/overload.py

bench-write-scaling: $(VENV)/.bench-installed  ## writes a second at 1, 2, 4 instances, the live timeline's NOTIFY in the write and after it
	$(BIN)/python bench/write_scaling.py $(BENCH_ARGS)

bench-fanout: $(VENV)/.bench-installed  ## 2,000 live subscribers on one worker, against Starlette + sse-starlette
	$(BIN)/python bench/fanout.py $(BENCH_ARGS)

rolling-deploy: install  ## HAProxy, three instances, the kit and live subscribers: restart each in turn, lose nothing
	$(BIN)/pytest tests/test_rolling_deploy.py -v

replicas: install  ## a primary and a hot standby of its own: read-your-writes, lag, the standby stopped mid-run
	$(BIN)/pytest tests/database/test_replica.py -v

loadtest: install  ## locust against a local uvicorn on PostgreSQL (or HOST), with a verdict
	$(BIN)/python loadtest/run.py

requirements.txt: constraints.txt pyproject.toml  ## what a buildpack installs, from the pins
	$(BIN)/python tools/runtime_requirements.py

lock: install  ## re-resolve constraints.txt with uv pip compile (UPGRADE=--upgrade moves every pin); then requirements.txt
	$(BIN)/python tools/lock.py $(UPGRADE)
	$(BIN)/python tools/runtime_requirements.py

clean:
	rm -rf $(VENV) $(LIB)/.venv .pytest_cache .ruff_cache .mypy_cache
