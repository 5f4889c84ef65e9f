# The two commands:  `make up`   — set up and run the service (embedded default)
#                    `make test` — set up and run the tests
# Both create .venv and install what they need on first use.
#
# Tests (tiers are marks, see pyproject.toml):
#   make test           ruff, then every test: the parallel pass, then the `serial` ones
#   make test-fast      the edit loop: all but `integration`, `browser`, `fuzz`, `docs` and
#                       `serial`, in parallel
#   make test-embedded  all but `postgres`: needs neither PostgreSQL nor Redis
#   make screenshots    the browser tests, writing the documents' screenshots to docs/screenshots/
# The targets that run the `browser` tests install Debian's chromium first if it is missing
# (scripts/ensure-chromium.sh); where it cannot be installed those tests fail, saying so.
# TEST_WORKERS=N sets the parallel pass's processes (default: one per CPU core).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is installed first, from TORCH_INDEX when set (else PyPI). From PyPI, Linux x86_64
# gets the CUDA build (GBs of NVIDIA libraries); macOS, Windows and Linux aarch64 get a CPU
# build. TORCH_INDEX=https://download.pytorch.org/whl/cpu is the CPU-only build for Linux,
# https://download.pytorch.org/whl/cu126 (or another cuXXX) a given CUDA build.
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_SOURCE = $(if $(TORCH_INDEX),installing $(TORCH) from $(TORCH_INDEX),installing $(TORCH) \
  from PyPI: the CUDA build (GBs) on Linux x86_64, a CPU build elsewhere. For Linux's CPU-only \
  build: make up TORCH_INDEX=https://download.pytorch.org/whl/cpu (see the README: Which torch build))
# Where `make up` serves: PORT=8123 HOST=0.0.0.0 (a non-loopback HOST needs tokens, the
# default). The CLI and examples/ find it through DESCENT_URL.
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP  := $(VENV)/.installed

.PHONY: up test test-fast test-embedded screenshots lint format services chromium install \
        assets clean docs-check

PYTEST       := $(PY) -m pytest
TEST_WORKERS ?= auto
# A module's tests stay in one process, so its fixtures (a served app, a trained model, a
# worker) are made once. Modules are handed out in file order, tests/integration/ (the
# longest) first, not by test count, which would leave them for the end. `serial` tests
# (outages, wall-clock heartbeats) run afterwards, one at a time.
PARALLEL     := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
DURATIONS    := --durations=30
# Both passes run even when the first fails; the recipe fails if either did.
define two_passes
	status=0; \
	$(PYTEST) $(PARALLEL) $(DURATIONS) -m "not serial$(1)" || status=$$?; \
	$(PYTEST) $(DURATIONS) -m "serial$(1)" || status=$$?; \
	exit $$status
endef

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "$(TORCH_SOURCE)"
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	@$(PY) -c "import torch; c = torch.version.cuda; \
	print('installed torch', torch.__version__ + ':', f'a CUDA {c} build' if c else 'a CPU build')"
	$(PY) -m pip install --quiet -e ".[worker,dev]"
	$(PY) scripts/vendor_assets.py
	touch $(STAMP)

install: $(STAMP)

# The dashboard's third-party front-end files (Swagger UI, ReDoc, uPlot, js-yaml), pinned in
# service/dashboard/vendor.toml, from the npm registry into service/dashboard/vendor/. Does
# nothing, offline, when they are installed as pinned; `--force` re-installs.
assets: $(STAMP)
	$(PY) scripts/vendor_assets.py

up: assets
	$(VENV)/bin/descent up --port $(PORT) --host $(HOST)

services:
	@scripts/ensure-services.sh

# A failed install does not stop the run: the browser tests then fail, with the reason.
chromium:
	-@scripts/ensure-chromium.sh

test: assets services chromium
	$(PY) -m ruff check .
	$(call two_passes,)

# One parallel pass: the `serial` tests (outages, wall-clock heartbeats) wait for `make test`.
test-fast: assets
	$(PYTEST) $(PARALLEL) -m "not integration and not browser and not fuzz and not docs and not serial"

# Without PostgreSQL/Redis: only the embedded (SQLite + SQL broker) backend.
test-embedded: assets chromium
	$(call two_passes, and not postgres)

# The browser tests in one process, copying each screenshot they take into docs/screenshots/
# (where README and docs/ link them); otherwise screenshots stay in pytest's tmp folders.
screenshots: assets chromium
	DESCENT_SCREENSHOTS=1 $(PYTEST) -p no:xdist -m browser

# Every figure README.md, docs/ and examples/ quote against its recorded source, and the
# cheap sources re-run (docs/figures/README.md). The test suite runs the same (tests/test_docs_figures.py).
docs-check: $(STAMP)
	$(PY) scripts/docs_check.py

# ruff, the layers' import contracts (pyproject.toml: [tool.importlinter]; see
# docs/architecture.md) and the type checker over the code that ships.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .descent .pytest_cache .ruff_cache
