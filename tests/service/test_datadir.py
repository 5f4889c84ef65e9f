"""The embedded default's data directory is its owner's alone (service/datadir.py)."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings
from service.datadir import make_private


@pytest.fixture
def restore_process() -> Iterator[None]:
    """The start-up sets the umask and TMPDIR of the process: put them back for the
    tests that follow in this one."""
    umask = os.umask(0o022)
    os.umask(umask)
    tmpdir = os.environ.get("TMPDIR")
    try:
        yield
    finally:
        os.umask(umask)
        if tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = tmpdir
        tempfile.tempdir = None


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_a_fresh_data_dir_is_0700_with_0600_files(
    tmp_path: Path, restore_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli.server import prepare_embedded
    from service.queue import prepare_sqlite_broker

    monkeypatch.delenv("TMPDIR", raising=False)
    os.umask(0o022)  # what a shell usually has
    settings = Settings(data_dir=tmp_path / "data")
    prepare_embedded(settings)
    prepare_sqlite_broker(str(settings.broker_url))  # as the API and the worker do
    # What the API and workers write later (a dataset, a model) under the same umask.
    settings.datasets_dir.mkdir(parents=True)
    (settings.datasets_dir / "d.npz").write_bytes(b"x")
    with tempfile.TemporaryFile() as spooled:  # where uploads spool
        assert Path(tempfile.gettempdir()) == (settings.artifacts_dir / "tmp").resolve()
        spooled.write(b"x")

    found = modes(settings.data_dir)
    for name in ("descent.sqlite", "broker.sqlite", "token", "artifacts/datasets/d.npz"):
        assert found.get(name) == 0o600, (name, found)
    for path, mode in found.items():
        wanted = 0o700 if (settings.data_dir / path).is_dir() else 0o600
        assert mode == wanted, f"{path} is {mode:04o}, not {wanted:04o}"


def test_an_existing_readable_data_dir_is_tightened_with_a_warning(
    tmp_path: Path, restore_process: None, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "artifacts" / "jobs" / "j1").mkdir(parents=True)
    for name in ("descent.sqlite", "descent.sqlite-wal", "artifacts/jobs/j1/model.pt"):
        (data / name).write_bytes(b"x")
        (data / name).chmod(0o644)
    (data / "token").write_bytes(b"t")
    (data / "token").chmod(0o600)  # already private: left as it is
    for folder in (data, data / "artifacts", data / "artifacts" / "jobs"):
        folder.chmod(0o755)
    (data / "link").symlink_to(tmp_path)  # not followed
    tmp_path.chmod(0o755)

    with caplog.at_level(logging.WARNING, logger="descent"):
        changed = make_private(Settings(data_dir=data))

    found = modes(data)
    assert found["."] == found["artifacts"] == found["artifacts/jobs"] == 0o700
    assert found["descent.sqlite"] == found["artifacts/jobs/j1/model.pt"] == 0o600
    assert found["token"] == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # beyond the link: untouched
    names = {str(p.relative_to(data)) for p, _, _ in changed}
    assert "token" not in names and {"descent.sqlite", "artifacts/jobs/j1/model.pt"} <= names
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "readable by other local users" in warning
    assert f"{data / 'descent.sqlite'} 0644->0600" in warning
