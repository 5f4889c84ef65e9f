# Descent images. Two targets built from one file:
#
#   docker build --target api    -t descent-api .     # FastAPI service, CPU torch only
#   docker build --target worker -t descent-worker .  # Celery worker, with torch
#
# The worker gets the default PyPI torch wheel (CUDA build). For a CPU-only worker:
#   docker build --target worker \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t descent-worker .
#
# Layer order keeps rebuilds cheap: third-party dependencies are installed from
# pyproject.toml alone, before any source is copied, so editing service/ or workers/
# only re-runs the last small layers (and never re-downloads torch).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# base: Python, the runtime user, and the API's third-party dependencies.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DESCENT_DATA_DIR=/data \
    DESCENT_ARTIFACTS_DIR=/data/artifacts

# Non-root runtime user. /data/artifacts is created and owned by it here so that a
# fresh named volume mounted on that path inherits the ownership.
RUN groupadd --system --gid 10001 descent \
 && useradd --system --uid 10001 --gid descent --home-dir /home/descent --create-home descent \
 && mkdir -p /data/artifacts \
 && chown -R descent:descent /data

WORKDIR /app

# Dependencies only (read from pyproject.toml), so this layer survives source edits.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# ---------------------------------------------------------------------------
# api: the REST service. It trains nothing, but the playground (POST /v1/playground)
# steps optimizers with the workers' own code in the API process, so it gets torch's
# CPU build (a fraction of the CUDA one's size), imported on the first playground
# request only. API_TORCH_INDEX_URL= (empty) takes the default PyPI wheel instead.
# ---------------------------------------------------------------------------
FROM base AS api

ARG API_TORCH_SPEC=torch==2.13.0
ARG API_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN if [ -n "$API_TORCH_INDEX_URL" ]; then \
      pip install --index-url "$API_TORCH_INDEX_URL" "$API_TORCH_SPEC"; \
    else \
      pip install "$API_TORCH_SPEC"; \
    fi

COPY README.md alembic.ini ./
COPY migrations/ migrations/
COPY service/ service/
COPY workers/ workers/
COPY descent/ descent/
# The dashboard's and the docs' third-party front-end files, from the npm registry at the
# versions and sha512 integrities service/dashboard/vendor.toml pins (.dockerignore keeps a
# local install out of the context, so the image always gets verified ones).
COPY scripts/vendor_assets.py scripts/vendor_assets.py
RUN python scripts/vendor_assets.py
# Editable, so the package's files stay next to alembic.ini and migrations/ in /app.
RUN pip install -e .

USER descent
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["descent", "api", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------
# worker: the Celery training worker, with torch.
# ---------------------------------------------------------------------------
FROM base AS worker

# The torch requirement and, optionally, the index to get it from (e.g. a CPU or a
# specific CUDA wheel index). Empty TORCH_INDEX_URL = the default PyPI wheel.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=

RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"; \
    else \
      pip install "$TORCH_SPEC"; \
    fi

# The rest of the worker extra (torch is already satisfied, so it stays as installed).
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['worker']))" \
      > /tmp/requirements-worker.txt \
 && pip install -r /tmp/requirements-worker.txt \
 && rm /tmp/requirements-worker.txt

COPY README.md alembic.ini ./
COPY migrations/ migrations/
COPY service/ service/
COPY workers/ workers/
COPY descent/ descent/
RUN pip install -e ".[worker]"

USER descent
# `descent worker` starts one worker process per visible GPU (CPU-only: one process).
CMD ["descent", "worker"]
