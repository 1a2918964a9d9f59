# driftwatch — set-up and everyday commands. `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := prometheus prometheus-alertmanager chromium postgresql
SUDO   := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)
PYTEST_ARGS ?=

.PHONY: help venv debs demo test lint format dashboards bench clean

help:
	@echo "make demo        create .venv, install, run the demo (SQLite ledger, /metrics on 127.0.0.1)"
	@echo "make test        create .venv, install everything the tests need (Debian packages too), run the suite"
	@echo "make lint        ruff"
	@echo "make dashboards  regenerate grafana/ from code"
	@echo "make bench       run the benchmarks in benchmarks/"

$(STAMP): setup.cfg constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	@touch $@

venv: $(STAMP)

# Debian packages the tests use: real Prometheus / Alertmanager, Chromium for page tests, and PostgreSQL
# (tests/helpers/pg_server.py finds its binaries in /usr/lib/postgresql/*/bin and runs a throwaway cluster).
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/driftwatch demo --non-interactive $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) debs lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

dashboards: $(STAMP)
	$(BIN)/python grafana/build.py

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
