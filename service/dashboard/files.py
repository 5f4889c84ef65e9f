"""Static files as the dashboard needs them served, and the answer when they are missing.

Starlette's StaticFiles already refuses paths that leave its folder (``..``, also when
percent-encoded, and symlinks out of it) with a 404. On top of it: content types set here
rather than guessed from the machine's MIME table (a browser refuses to run an ES module
served as anything but JavaScript), ``nosniff`` so that a wrong one fails loudly,
``no-cache`` (the URLs carry no version, so a browser revalidates, cheaply, with the ETag),
and a 503 saying what to run where a folder is missing instead of a bare 500.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from service.errors import error_body

#: The stamp scripts/vendor_assets.py writes last: the vendor folder is whole when it is there.
VENDOR_STAMP = "installed.json"
VENDOR_MISSING = (
    "The dashboard's third-party files (Swagger UI, ReDoc, uPlot, js-yaml) are not installed "
    "in {folder}. Run `python scripts/vendor_assets.py` (or `make assets`) in the project, "
    "then reload."
)
STATIC_MISSING = "The dashboard's own files are missing from the installed package ({folder})."

#: Headers of every file served from these folders.
FILE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


def vendor_installed(folder: Path) -> bool:
    return (folder / VENDOR_STAMP).is_file()


def unavailable(scope: Scope, message: str) -> Response:
    """A 503 with ``message``: a page for a browser, the API's error body for the rest."""
    headers = {"Cache-Control": "no-store"}
    if "text/html" in Headers(scope=scope).get("accept", ""):
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Descent: files not installed</title></head><body>"
            f"<h1>503: files not installed</h1><p>{html.escape(message)}</p></body></html>"
        )
        return HTMLResponse(page, status_code=503, headers=headers)
    body = error_body(503, "assets_not_installed", message)
    return JSONResponse(body, status_code=503, headers=headers)


class AssetFiles(StaticFiles):
    """StaticFiles with the types, caching and missing-folder answer described above."""

    def __init__(self, *, directory: Path, missing: str) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.missing = missing.format(folder=directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not os.path.isdir(str(self.directory)):
            await unavailable(scope, self.missing)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(FILE_HEADERS)
        suffix = Path(full_path).suffix.lower()
        # Files without a suffix here are licence texts: LICENSE, NOTICE.
        media_type = MEDIA_TYPES.get(suffix) if suffix else "text/plain; charset=utf-8"
        if media_type and response.status_code != 304:
            response.headers["Content-Type"] = media_type
        return response
