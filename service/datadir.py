"""The embedded default's data directory, readable by its owner only.

``descent.sqlite`` holds every user, token hash and spec, ``broker.sqlite`` every queued
message, and the artifact store every model and uploaded dataset: on a shared machine none
of it is for other local users. :func:`make_private` therefore

- sets the process's umask to ``0o077``, so whatever the API, SQLite (its ``-wal`` and
  ``-shm`` files take the database's mode) and the supervised workers (which inherit the
  umask) create later is ``0600`` (files) or ``0700`` (folders);
- creates the data directory ``0700``;
- tightens what an older version left readable: every folder under the data directory (and
  the artifact store, when it lives elsewhere) loses its group and other bits, and so does
  every file, with one warning naming what changed. Symbolic links are not followed.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

from service.config import Settings

__all__ = ["PRIVATE_UMASK", "make_private", "private_tmp", "tighten_modes", "uses_data_dir"]

log = logging.getLogger("descent")

#: Group and other get nothing: files 0600, folders 0700.
PRIVATE_UMASK = 0o077
#: How many changed paths the warning names before it only counts.
_SHOWN = 10


def uses_data_dir(settings: Settings) -> bool:
    """Whether the database is the embedded default's SQLite file (the data dir is in use)."""
    return str(settings.database_url).startswith("sqlite")


def tighten_modes(root: Path) -> list[tuple[Path, int, int]]:
    """Remove group and other permissions from ``root`` and everything under it.

    Returns ``(path, old mode, new mode)`` for each path changed. A path that cannot be
    changed (owned by another user) is logged and left as it is.
    """
    changed: list[tuple[Path, int, int]] = []

    def fix(path: Path) -> None:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:  # removed meanwhile (a SQLite -shm file, a temp file)
            return
        if not mode & 0o077:
            return
        new = mode & 0o700
        try:
            path.chmod(new)
        except OSError as exc:
            log.warning("could not make %s private (mode %04o): %s", path, mode, exc)
            return
        changed.append((path, mode, new))

    if not root.is_dir() or root.is_symlink():
        return changed
    fix(root)
    for folder, dirs, files in os.walk(root):  # os.walk does not follow links by default
        base = Path(folder)
        for name in dirs + files:
            path = base / name
            if not path.is_symlink():
                fix(path)
    return changed


def make_private(settings: Settings) -> list[tuple[Path, int, int]]:
    """Set the umask, create the data directory 0700 and tighten what is there already
    (see the module docstring); returns what was changed, which is also logged."""
    os.umask(PRIVATE_UMASK)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    roots = [settings.data_dir]
    artifacts = settings.artifacts_dir
    if artifacts is not None and not artifacts.resolve().is_relative_to(
        settings.data_dir.resolve()
    ):
        roots.append(artifacts)
    changed = [entry for root in roots for entry in tighten_modes(root)]
    if changed:
        shown = ", ".join(f"{path} {old:04o}->{new:04o}" for path, old, new in changed[:_SHOWN])
        more = f" and {len(changed) - _SHOWN} more" if len(changed) > _SHOWN else ""
        log.warning(
            "the data directory was readable by other local users; made %d path(s) private "
            "to their owner: %s%s",
            len(changed),
            shown,
            more,
        )
    return changed


def private_tmp(settings: Settings) -> Path | None:
    """Make ``<artifacts>/tmp`` (0700) this process's temporary folder, and its children's
    (``TMPDIR``), unless ``TMPDIR`` is set: uploads spool there on their way to the parser,
    beside the data rather than in a shared ``/tmp`` (often a small RAM disk). Returns the
    folder, or None when ``TMPDIR`` decides."""
    if os.environ.get("TMPDIR") or settings.artifacts_dir is None:
        return None
    folder = settings.artifacts_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["TMPDIR"] = str(folder.resolve())
    tempfile.tempdir = None  # computed again from TMPDIR on next use
    return folder
