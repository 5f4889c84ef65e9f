"""The model cache: bounded, least recently used first out, loads once under concurrency,
reloads a rewritten bundle, and reports missing or unreadable bundles as API errors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from bundles import write_bundle

from service.errors import Conflict, NotFound
from service.predict.cache import ModelCache


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for n, name in enumerate("abc"):
        write_bundle(root / name, job_id=name, seed=n)
        out[name] = root / name
    return out


def test_the_least_recently_used_model_is_dropped_first(bundles: dict[str, Path]) -> None:
    cache = ModelCache(2)
    cache.get("a", bundles["a"])
    cache.get("b", bundles["b"])
    cache.get("a", bundles["a"])  # a is now the most recent
    cache.get("c", bundles["c"])  # b goes
    stats = cache.stats()
    assert (stats.size, stats.loads, stats.hits, stats.evictions) == (2, 3, 1, 1)
    cache.get("a", bundles["a"])
    assert cache.stats().hits == 2  # a stayed
    cache.get("b", bundles["b"])
    assert cache.stats().loads == 4  # b was loaded again


def test_concurrent_requests_for_a_new_model_load_it_once(bundles: dict[str, Path]) -> None:
    cache = ModelCache(4)
    start = threading.Barrier(8)
    got = []

    def ask() -> None:
        start.wait()
        got.append(cache.get("a", bundles["a"]))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats().loads == 1 and cache.stats().hits == 7
    assert all(m is got[0] for m in got)


def test_a_rewritten_bundle_is_loaded_again(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    write_bundle(folder, job_id="j", seed=1)
    cache = ModelCache(4)
    rows = np.ones((1, 4), dtype=np.float32)
    before = cache.get("j", folder).run(rows)
    write_bundle(folder, job_id="j", seed=2, saved_epoch=9)
    stat = (folder / "model.json").stat()
    os.utime(folder / "model.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    model = cache.get("j", folder)
    assert model.manifest.saved.epoch == 9
    assert not np.allclose(model.run(rows), before)
    assert cache.stats().size == 1  # the old version is not kept beside it


def test_missing_and_unreadable_bundles_are_api_errors(tmp_path: Path) -> None:
    cache = ModelCache(2)
    with pytest.raises(NotFound, match="missing"):
        cache.get("x", tmp_path / "nothing")
    folder = tmp_path / "y"
    write_bundle(folder, job_id="y")
    (folder / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(Conflict, match="model.onnx"):
        cache.get("y", folder)
    (folder / "model.onnx").unlink()
    with pytest.raises(NotFound):
        cache.get("y", folder)
    newer = (
        (folder / "model.json").read_text().replace('"format_version": 1', '"format_version": 99')
    )
    (folder / "model.json").write_text(newer)
    with pytest.raises(Conflict, match="upgrade descent"):
        cache.get("y", folder)
    assert cache.stats().size == 0
