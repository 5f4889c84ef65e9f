"""A fake API for the user commands: an ``httpx.MockTransport`` answering each route with
what the real API would send (see ``cli_support``), and the CLI pointed at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service import client as client_module

#: One answer per (method, path): a JSON body, bytes, an SSE text for event streams, or
#: a function of the request that makes the response.
Routes = dict[tuple[str, str], Any]


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Callable[[Routes], list[httpx.Request]]:
    """Point the CLI at a fake API with these routes; returns the requests it gets."""

    def install(routes: Routes) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            answer = routes.get((request.method, request.url.path))
            if answer is None:
                body = {"error": {"status": 404, "code": "not_found", "message": "no route"}}
                return httpx.Response(404, json=body)
            if callable(answer):
                return answer(request)
            if isinstance(answer, str):
                headers = {"content-type": "text/event-stream"}
                return httpx.Response(200, headers=headers, content=answer.encode())
            if isinstance(answer, bytes):
                return httpx.Response(200, content=answer)
            return httpx.Response(200, json=answer)

        def from_config(url=None, token=None, config_path=None, **kw):  # noqa: ANN001, ANN003, ANN202
            return client_module.Client(
                url or "http://127.0.0.1:8000", token, transport=httpx.MockTransport(handler)
            )

        monkeypatch.setattr(client_module.Client, "from_config", staticmethod(from_config))
        return seen

    return install
