"""The web UI, served by the API from the installed package: nothing comes from a CDN.

- ``STATIC_DIR``: the dashboard's own HTML, JavaScript and CSS (in git), under ``/static``;
  ``/`` is its ``index.html``.
- ``VENDOR_DIR``: third-party files pinned in ``vendor.toml`` beside this file and installed
  from the npm registry by ``scripts/vendor_assets.py`` (``make assets``; not in git), under
  ``/static/vendor/<package>/`` (``LICENSES.md`` there lists their licences).
- ``/docs`` and ``/redoc``: FastAPI's Swagger UI and ReDoc pages on those local copies.

Without the vendor files ``/``, ``/docs`` and ``/redoc`` answer 503 saying what to run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from service.dashboard.files import STATIC_MISSING, VENDOR_MISSING, AssetFiles
from service.dashboard.pages import DOCS_URL, REDOC_URL, add_pages

__all__ = [
    "DOCS_URL",
    "REDOC_URL",
    "STATIC_DIR",
    "STATIC_URL",
    "VENDOR_DIR",
    "VENDOR_URL",
    "install",
]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
VENDOR_DIR = HERE / "vendor"
STATIC_URL = "/static"
VENDOR_URL = "/static/vendor"


def install(
    app: FastAPI, *, static_dir: Path | None = None, vendor_dir: Path | None = None
) -> None:
    """Serve the dashboard and the docs pages from ``app``; create ``app`` with
    ``docs_url=None, redoc_url=None`` (FastAPI's own pages load their scripts from a CDN).
    The folders default to STATIC_DIR and VENDOR_DIR, read when this is called."""
    static_dir = static_dir or STATIC_DIR
    vendor_dir = vendor_dir or VENDOR_DIR
    # The vendor mount first: /static would otherwise take /static/vendor/… too.
    app.mount(VENDOR_URL, AssetFiles(directory=vendor_dir, missing=VENDOR_MISSING), name="vendor")
    app.mount(STATIC_URL, AssetFiles(directory=static_dir, missing=STATIC_MISSING), name="static")
    add_pages(app, static_dir=static_dir, vendor_dir=vendor_dir, vendor_url=VENDOR_URL)
