# EduHub Alerts: the two commands are `make run` and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# pip's notes about local index folders that do not exist are noise here.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: help
help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.py sidecar/pyproject.toml requirements-dev.txt constraints.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -r requirements-dev.txt 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip check
	touch $(STAMP)

.PHONY: install
install: $(STAMP)  ## Create .venv and install both packages with the pinned dependencies

.PHONY: run
run: install  ## Start Redis, Plone (:8080) and the sidecar (:8090); Ctrl-C stops all three
	$(BIN)/python -m devstack run

JS_PACKAGES := frontend/packages/eduhub-alerts-client frontend/packages/volto-eduhub-alerts

.PHONY: test-js
test-js:  ## Run the JavaScript client's and the Volto add-on's tests (Node)
	for package in $(JS_PACKAGES); do \
	  (cd $$package && npm ci --no-audit --no-fund --loglevel=error && npm test) || exit 1; \
	done

.PHONY: test
test: install test-js  ## Run the whole test suite with coverage of both packages
	$(BIN)/python -m pytest --cov --cov-report=term-missing $(PYTEST_ARGS)

.PHONY: bench-plone
bench-plone: install  ## Measure what alerts add to a content save (prints figures)
	$(BIN)/python -m pytest tests/plone/bench_save_overhead.py -q -s -p no:warnings

.PHONY: bench-sidecar
bench-sidecar: install  ## Memory per WebSocket and broadcast latency, 1,000 clients (prints figures)
	$(BIN)/python -m tests.benchmarks.bench_sidecar_ws $(BENCH_ARGS)

.PHONY: bench-slack
bench-slack: install  ## Slack send_alert round trip against a local Slack stand-in (prints figures)
	$(BIN)/python -m tests.benchmarks.bench_slack_roundtrip $(BENCH_ARGS)

.PHONY: docs
docs: install  ## Build the documentation (strict) into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

.PHONY: i18n
i18n: install  ## Rebuild the add-on's .pot and English catalog from the code
	$(BIN)/python -m devstack.i18n

.PHONY: constraints
constraints: install  ## Re-freeze constraints.txt from the virtual environment
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --all --exclude-editable \
	  | grep -vE '^(pip|-e)[= ]' | sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	{ echo "# Generated from constraints.txt by make constraints: pins for buildout.cfg."; \
	  echo "[versions]"; grep -E '^[A-Za-z0-9]' constraints.txt | sed 's/==/ = /'; } > versions.cfg

.PHONY: clean
clean:  ## Remove the virtual environment and build output (keeps var/, the site's data)
	rm -rf $(VENV) site build dist .coverage .coverage.* htmlcov
