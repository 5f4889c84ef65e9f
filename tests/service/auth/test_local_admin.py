"""The embedded default's first start: a local admin, its token file, and the rows
from before accounts existed handed to it."""

from __future__ import annotations

import stat
import uuid

from sqlalchemy import select

from service.auth.models import User
from service.auth.service import ensure_local_admin
from service.datasets.models import Dataset
from service.db import make_engine, make_sessionmaker, session_scope
from service.jobs.models import Job
from service.spec import JobSpec


def test_first_start_creates_the_admin_and_adopts_ownerless_rows(sqlite_backend):
    settings = sqlite_backend.settings()
    sessions = make_sessionmaker(make_engine(str(settings.database_url)))
    job_id, ds_id = str(uuid.uuid4()), str(uuid.uuid4())
    with session_scope(sessions) as s:  # as an older version left them: no owner
        s.add(
            Dataset(
                id=ds_id, name="old", target="y", task="regression", n_rows=10,
                n_features=1, feature_names=["x"], size_bytes=10,
            )
        )  # fmt: skip
        s.add(
            Job(
                id=job_id, name="old", spec=JobSpec().model_dump(mode="json"),
                task="classification", n_parameters=1,
            )
        )  # fmt: skip

    token = ensure_local_admin(settings)
    assert token is not None and settings.token_file.read_text().strip() == token
    assert stat.S_IMODE(settings.token_file.stat().st_mode) == 0o600
    with session_scope(sessions) as s:
        admin = s.scalars(select(User)).one()
        assert (admin.name, admin.role) == ("admin", "admin")
        assert s.get(Job, job_id).owner_id == admin.id
        assert s.get(Dataset, ds_id).owner_id == admin.id
    # Later starts change nothing.
    assert ensure_local_admin(settings) is None
