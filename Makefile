# driftwatch — set-up and everyday commands. `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := prometheus prometheus-alertmanager chromium postgresql
SUDO   := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)
PYTEST_ARGS ?=

# The version matrix (sentry-python's lowest/latest idea). setup.cfg's ranges are tested at both ends:
# - newest: .venv installs from constraints.txt, the newest releases as of its last refresh, pinned, so that
#   an upstream release cannot fail CI for a change that did not touch it;
# - lowest: .venv-lowest installs exactly each `>=` minimum of install_requires and the user extras
#   (constraints-lowest.txt; tests/docs/test_packaging.py keeps the two equal) and runs the suite except
#   the `servers` tests (Prometheus, Alertmanager, promtool, Chromium: Debian binaries no range pins);
#   what cannot apply there skips saying why (tests/helpers/minimums.lowest_run(), realworld programs' `needs`);
# - `make test-latest` resolves the newest releases afresh, unpinned, in .venv-latest and runs the whole
#   suite: run it before refreshing constraints.txt (pip freeze of .venv-latest) and to see what a user
#   installing today gets; it is not part of `make test` because its result changes without a commit.
LOWEST        := .venv-lowest
LOWEST_STAMP  := $(LOWEST)/.installed
LATEST        := .venv-latest
# what .venv-lowest installs: every user extra plus the test tools (not dev, which holds what cannot install
# beside the minimums); .venv-latest takes dev too, so that its freeze can replace constraints.txt
LOWEST_EXTRAS := all,otlp,postgres,drift,test
LATEST_EXTRAS := all,otlp,postgres,drift,dev
LOWEST_PYTEST := -m "not servers"

.PHONY: help venv debs demo test test-lowest test-latest constraints-lowest lint format dashboards bench clean

help:
	@echo "make demo        create .venv, install, run the demo (SQLite ledger, /metrics on 127.0.0.1)"
	@echo "make test        create .venv, install everything the tests need (Debian packages too), run the suite;"
	@echo "                 then the same on the minimum versions setup.cfg allows (make test-lowest, .venv-lowest)"
	@echo "make test-latest the whole suite on the newest releases, resolved now without constraints.txt"
	@echo "make constraints-lowest  re-pin constraints-lowest.txt after a minimum in setup.cfg moved"
	@echo "make lint        ruff"
	@echo "make dashboards  regenerate grafana/ from code"
	@echo "make bench       run every benchmark and write docs/performance.md (QUICK=1: a few minutes)"

# setuptools' editable install ends with an "Editable installation ... folders in your working directory with the
# same name as your package" warning block; driftwatch/ is that folder on purpose (a flat layout), so quiet it
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(STAMP): setup.cfg constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	@touch $@

venv: $(STAMP)

$(LOWEST_STAMP): setup.cfg constraints-lowest.txt
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(LOWEST)/bin/python -m pip install -q -c constraints-lowest.txt -e '.[$(LOWEST_EXTRAS)]'
	@touch $@

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
	@$(MAKE) --no-print-directory test-lowest

test-lowest: $(LOWEST_STAMP) debs
	@echo "== the suite on the minimum versions (constraints-lowest.txt), without the servers tests"
	$(LOWEST)/bin/python -m pytest $(LOWEST_PYTEST) $(PYTEST_ARGS)

test-latest: debs
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(LATEST)/bin/python -m pip install -q --upgrade -e '.[$(LATEST_EXTRAS)]'
	@echo "== the suite on the newest releases; versions that differ from constraints.txt:"
	@$(LATEST)/bin/python -m pip freeze --exclude-editable | grep -vxFf constraints.txt || true
	$(LATEST)/bin/python -m pytest $(PYTEST_ARGS)

# the minimums exactly (tests/helpers/minimums.py reads them from setup.cfg), the rest as pip resolves it today
constraints-lowest:
	rm -rf .venv-pin
	$(PYTHON) -m venv .venv-pin
	.venv-pin/bin/python -m pip install -q --upgrade pip
	$(QUIET_EDITABLE) .venv-pin/bin/python -m pip install -q -e '.[$(LOWEST_EXTRAS)]' $$($(PYTHON) tests/helpers/minimums.py)
	{ echo "# The minimum versions setup.cfg allows, and what they pull in: .venv-lowest (make test-lowest)."; \
	  echo "# Generated by make constraints-lowest; Python 3.11."; \
	  .venv-pin/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > constraints-lowest.txt
	rm -rf .venv-pin

dashboards: $(STAMP)
	$(BIN)/python grafana/build.py

# every benchmark, one after the other, then docs/performance.md written from the run (~30-40 min on 2 cores);
# QUICK=1: fewer rounds and calls, a few minutes (benchmarks/suite.py --quick)
QUICK ?=
bench: $(STAMP)
	@$(MAKE) --no-print-directory debs DEBS="$(DEBS) valgrind"
	$(BIN)/python benchmarks/suite.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) $(LOWEST) $(LATEST) build *.egg-info .pytest_cache .ruff_cache
