"""Uploads in progress at once (service/datasets/slots.py): per user 429, in all 503, both
with Retry-After, and a slot comes back when its upload ends, however it ends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException

from service.auth.middleware import USER_STATE
from service.datasets.slots import UploadSlots
from service.limits import UPLOAD_ROUTES


class _User:
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def make_app(release: asyncio.Event) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/datasets")
    async def upload(fail: bool = False) -> dict[str, str]:
        await release.wait()
        if fail:
            raise HTTPException(400, "refused")
        return {"ok": "yes"}

    app.add_middleware(UploadSlots, per_user=2, total=3, routes=UPLOAD_ROUTES)
    return app


def as_user(app: Any) -> Any:
    """Names the caller from a header, as the token check does from the token."""

    async def named(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            user = dict(scope["headers"]).get(b"x-user")
            if user:
                scope.setdefault("state", {})[USER_STATE] = _User(user.decode())
        await app(scope, receive, send)

    return named


async def _scenario() -> None:
    release = asyncio.Event()
    app = make_app(release)
    transport = httpx.ASGITransport(app=as_user(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        def post(user: str, **params: Any) -> Any:
            return client.post("/v1/datasets", headers={"x-user": user}, params=params)

        held = [asyncio.create_task(post("ann")), asyncio.create_task(post("ann", fail=True))]
        await asyncio.sleep(0.05)  # both are in progress
        r = await post("ann")
        assert r.status_code == 429 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "too_many_uploads"
        assert "DESCENT_MAX_UPLOADS_PER_USER" in r.json()["error"]["message"]

        held.append(asyncio.create_task(post("bob")))
        await asyncio.sleep(0.05)
        r = await post("cy")  # cy has none, but the server has three in progress
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "uploads_busy"
        assert "DESCENT_MAX_CONCURRENT_UPLOADS=3" in r.json()["error"]["message"]

        other = await client.get("/v1/other")  # other routes are not counted
        assert other.status_code == 404

        release.set()
        assert [(await t).status_code for t in held] == [200, 400, 200]
        # Every slot came back, the failed upload's too.
        assert [(await post(u)).status_code for u in ("ann", "ann", "cy")] == [200, 200, 200]


def test_uploads_beyond_a_users_share_or_the_servers_are_refused() -> None:
    asyncio.run(_scenario())


def test_a_refused_upload_leaves_no_file_behind(api: Any) -> None:
    settings = api.app.state.settings
    bad = b"a,b,label\n" + b"".join(b"%d,x,%d\n" % (i, i % 2) for i in range(20))
    r = api.post("/v1/datasets", files={"file": ("bad.csv", bad, "text/csv")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_dataset"
    good = b"a,b,label\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(20))
    assert api.post("/v1/datasets", files={"file": ("ok.csv", good)}).status_code == 201
    # One dataset, one file: nothing of the refused one, no temporary file of either.
    assert [p.suffix for p in settings.datasets_dir.iterdir()] == [".npz"]
