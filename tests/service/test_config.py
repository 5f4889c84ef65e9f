"""Settings: production refuses database and broker URLs with weak passwords."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import DEFAULT_PASSWORDS, Settings, weak_password

DB = "postgresql+psycopg://descent:{}@postgres:5432/descent"
BROKER = "redis://:{}@redis:6379/0"
STRONG = "x7-Qv2_kP9.tLm~"


def production(database_url: str, broker_url: str) -> Settings:
    return Settings(environment="production", database_url=database_url, broker_url=broker_url)


def test_strong_passwords_are_accepted() -> None:
    s = production(DB.format(STRONG), BROKER.format("other-" + STRONG))
    assert str(s.database_url).endswith("@postgres:5432/descent")


@pytest.mark.parametrize("weak", sorted(DEFAULT_PASSWORDS) + ["DESCENT", "Postgres", "%73ecret"])
@pytest.mark.parametrize("which", ["database", "broker"])
def test_default_passwords_are_refused(weak: str, which: str) -> None:
    db = DB.format(weak if which == "database" else STRONG)
    broker = BROKER.format(weak if which == "broker" else STRONG)
    variable = "DESCENT_DATABASE_URL" if which == "database" else "DESCENT_BROKER_URL"
    with pytest.raises(ValidationError) as info:
        production(db, broker)
    message = str(info.value)
    assert f"refuses {variable}: it has a well-known default password" in message
    # The refused URL is not echoed (hide_input_in_errors): logs never hold a password.
    assert "@postgres" not in message and "@redis" not in message


@pytest.mark.parametrize(
    ("db", "broker", "variable"),
    [
        ("postgresql+psycopg://descent@postgres/descent", BROKER.format(STRONG), "DATABASE"),
        ("postgresql+psycopg://descent:@postgres/descent", BROKER.format(STRONG), "DATABASE"),
        (DB.format(STRONG), "redis://redis:6379/0", "BROKER"),
        (DB.format(STRONG), "redis://:@redis:6379/0", "BROKER"),
        (DB.format(STRONG), "sqla+postgresql://descent@postgres/descent", "BROKER"),
    ],
)
def test_missing_passwords_are_refused(db: str, broker: str, variable: str) -> None:
    expected = f"refuses DESCENT_{variable}_URL: it has no password"
    with pytest.raises(ValidationError, match=expected):
        production(db, broker)


def test_development_keeps_its_defaults() -> None:
    s = Settings(database_url=DB.format("descent"), broker_url="redis://redis:6379/0")
    assert s.environment == "development"
    assert Settings().database_url.startswith("sqlite")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://:changeme@r:6379/0", "has a well-known default password"),
        ("redis://r:6379/0", "has no password"),
        ("redis://:x@[::1/0", "is not a valid URL"),
        (f"postgresql://u:{STRONG}@h/db", None),
    ],
)
def test_weak_password(url: str, problem: str | None) -> None:
    assert weak_password(url) == problem
