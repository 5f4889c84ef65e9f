"""The pages: the dashboard's ``/`` and the API docs, ``/docs`` (Swagger UI) and ``/redoc``,
on the vendored copies of Swagger UI and ReDoc instead of FastAPI's CDN defaults."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import FileResponse, Response

from service.dashboard.files import (
    FILE_HEADERS,
    STATIC_MISSING,
    VENDOR_MISSING,
    unavailable,
    vendor_installed,
)

DOCS_URL = "/docs"
REDOC_URL = "/redoc"

#: What the pages may load, enforced by the browser: only this server. The dashboard runs
#: no inline script; the docs pages FastAPI writes do (their start-up call), and ReDoc
#: starts a search worker from a blob. ReDoc 2 also shows Redocly's logo from their CDN:
#: ``img-src`` refuses it in the browser (ReDoc then hides the image), so no request
#: leaves for it.
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DASHBOARD_CSP = f"{_PAGE_CSP}; script-src 'self'"
DOCS_CSP = f"{_PAGE_CSP}; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:"


def add_pages(app: FastAPI, *, static_dir: Path, vendor_dir: Path, vendor_url: str) -> None:
    """Add ``/``, ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` to ``app``."""
    openapi_url = app.openapi_url
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    assert openapi_url and oauth2_redirect_url, "the docs pages need the OpenAPI document"
    title = app.title

    def missing(request: Request) -> Response | None:
        if vendor_installed(vendor_dir):
            return None
        return unavailable(request.scope, VENDOR_MISSING.format(folder=vendor_dir))

    def root(request: Request) -> str:
        # Behind a proxy that mounts the API under a prefix, as FastAPI's own docs do.
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        index = static_dir / "index.html"
        if not index.is_file():
            return unavailable(request.scope, STATIC_MISSING.format(folder=static_dir))
        if (answer := missing(request)) is not None:
            return answer
        headers = {**FILE_HEADERS, "Content-Security-Policy": DASHBOARD_CSP}
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=headers)

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        if (answer := missing(request)) is not None:
            return answer
        assets = f"{root(request)}{vendor_url}/swagger-ui-dist"
        return with_csp(
            get_swagger_ui_html(
                openapi_url=root(request) + openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{assets}/swagger-ui.css",
                swagger_favicon_url=f"{assets}/favicon-32x32.png",
                oauth2_redirect_url=root(request) + oauth2_redirect_url,
                init_oauth=app.swagger_ui_init_oauth,
                # No validator badge: it would send the document's URL to validator.swagger.io.
                swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> Response:
        if (answer := missing(request)) is not None:
            return answer
        return with_csp(
            get_redoc_html(
                openapi_url=root(request) + openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{root(request)}{vendor_url}/redoc/bundles/redoc.standalone.js",
                redoc_favicon_url=f"{root(request)}{vendor_url}/swagger-ui-dist/favicon-32x32.png",
                with_google_fonts=False,
            )
        )


def with_csp(response: Response, policy: str = DOCS_CSP) -> Response:
    response.headers["Content-Security-Policy"] = policy
    return response
