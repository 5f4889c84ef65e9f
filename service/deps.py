"""Dependencies shared by the routers: settings, a managed session, the task producer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import session_scope
from service.queue import Producer


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.sessionmaker) as session:
        yield session


def _producer(request: Request) -> Producer:
    return request.app.state.producer


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
ProducerDep = Annotated[Producer, Depends(_producer)]
