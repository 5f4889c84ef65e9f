# The two commands:  `make up`   — set up and run the service (embedded default)
#                    `make test` — set up and run the tests
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Install torch before the project so nothing pulls a multi-GB CUDA build by accident.
# Point TORCH_INDEX at a wheel index of your choice, e.g. the CPU-only one.
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed

.PHONY: up test test-embedded lint format services install clean docs-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[worker,dev]"
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/descent up

services:
	@scripts/ensure-services.sh

test: $(STAMP) services
	$(PY) -m ruff check .
	$(PY) -m pytest

# Without PostgreSQL/Redis: only the embedded (SQLite + SQL broker) backend.
test-embedded: $(STAMP)
	$(PY) -m pytest -m "not postgres"

# Every figure README.md, docs/ and examples/ quote against its recorded source, and the
# cheap sources re-run (docs/figures/README.md). The test suite runs the same (tests/test_docs_figures.py).
docs-check: $(STAMP)
	$(PY) scripts/docs_check.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .descent .pytest_cache .ruff_cache
