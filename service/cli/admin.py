"""``descent admin …`` and ``descent token``: accounts from the command line.

These are server commands: they talk to the database directly (settings from
``DESCENT_*``), so they work where no token exists yet: they are how the full stack gets
its first admin. Secrets go to stdout
alone (``TOKEN=$(descent admin create-token ada)``); everything else to stderr. Imports
stay inside the commands so that ``descent --help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.config import Settings

admin = typer.Typer(
    help="Manage users and their API tokens (talks to the database directly).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The user's name.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _prepare(settings: Settings) -> None:
    """The embedded default migrates on demand, as `descent up` would; any other database
    must have been migrated (`descent migrate`), as the API needs."""
    from sqlalchemy import inspect

    from service.db import make_engine
    from service.migrate import upgrade

    url = str(settings.database_url)
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(url)
        return
    engine = make_engine(url)
    try:
        ready = inspect(engine).has_table("users")
    finally:
        engine.dispose()
    if not ready:
        raise _fail("the database has no accounts tables yet; run `descent migrate` first")


@contextmanager
def _session() -> Iterator[Session]:
    from sqlalchemy.exc import OperationalError

    from service.config import Settings
    from service.db import make_engine, make_sessionmaker, session_scope
    from service.errors import ApiError

    settings = Settings()
    engine = make_engine(str(settings.database_url))
    try:
        _prepare(settings)
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    except ApiError as exc:
        raise _fail(exc.message) from exc
    except OperationalError as exc:
        raise _fail(f"the database is unreachable: {exc.orig}") from exc
    finally:
        engine.dispose()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _new_token(session: Session, user_id: str, name: str, expires_in_days: int | None) -> str:
    from datetime import timedelta

    from service.auth import service
    from service.db import utcnow

    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    row, plain = service.create_token(
        session=session, user_id=user_id, name=name, expires_at=expires
    )
    typer.echo(f"token {row.id} ({row.name}); the secret is shown once:", err=True)
    return plain


@admin.command("create-user")
def create_user(
    name: NameArg,
    is_admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
) -> None:
    """Create a user and its first token (printed once, on stdout)."""
    from service.auth import service

    with _session() as session:
        user = service.create_user(session=session, name=name, role="admin" if is_admin else "user")
        typer.echo(f"created {user.role} {user.name!r} ({user.id})", err=True)
        typer.echo(_new_token(session, user.id, "first", None))


@admin.command("users")
def users() -> None:
    """List every user."""
    from service.auth import service

    with _session() as session:
        rows, _ = service.list_users(session=session, limit=10**9)
        _table(
            ["ID", "NAME", "ROLE", "STATUS", "CREATED"],
            [
                [u.id, u.name, u.role, "disabled" if u.disabled else "enabled", _when(u.created_at)]
                for u in rows
            ],
        )


def _set_disabled(name: str, disabled: bool) -> None:
    from service.auth import service

    with _session() as session:
        user = service.get_user_by_name(session=session, name=name)
        service.set_disabled(session=session, user_id=user.id, disabled=disabled)
        typer.echo(f"{'disabled' if disabled else 'enabled'} {user.name!r}", err=True)


@admin.command("disable-user")
def disable_user(name: NameArg) -> None:
    """Disable a user: their tokens are refused until the user is enabled again."""
    _set_disabled(name, True)


@admin.command("enable-user")
def enable_user(name: NameArg) -> None:
    """Enable a disabled user."""
    _set_disabled(name, False)


@admin.command("create-token")
def create_token(
    name: NameArg,
    token_name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="Days until it stops working; default: never.")
    ] = None,
) -> None:
    """Create a token for a user (printed once, on stdout)."""
    from service.auth import service

    with _session() as session:
        user = service.get_user_by_name(session=session, name=name)
        typer.echo(_new_token(session, user.id, token_name, expires_in_days))


@admin.command("tokens")
def tokens(name: NameArg) -> None:
    """List a user's tokens (ids and prefixes; the secrets are not stored)."""
    from service.auth import service

    with _session() as session:
        user = service.get_user_by_name(session=session, name=name)
        rows, _ = service.list_tokens(session=session, user_id=user.id, limit=10**9)
        _table(
            ["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED"],
            [
                [
                    t.id,
                    t.name,
                    t.prefix + "…",
                    _when(t.created_at),
                    _when(t.last_used_at),
                    _when(t.expires_at),
                    _when(t.revoked_at),
                ]
                for t in rows
            ],
        )


@admin.command("revoke-token")
def revoke_token(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token: it is refused from then on."""
    from service.auth import service

    with _session() as session:
        row = service.revoke_token(session=session, token_id=token_id, user_id=None)
        typer.echo(f"revoked token {row.id} ({row.name}) at {_when(row.revoked_at)}", err=True)


def token() -> None:
    """Print the local admin's API token (the embedded default's; minted if missing)."""
    from service.auth import service
    from service.config import Settings
    from service.errors import ApiError

    settings = Settings()
    path = settings.token_file
    if path.is_file():
        value = path.read_text().strip()
        if value:
            typer.echo(value)
            return
    _prepare(settings)
    try:
        plain = service.mint_local_token(settings)
    except ApiError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"minted a new token for the local admin; saved in {path}", err=True)
    typer.echo(plain)


def register(app: typer.Typer, panel: str) -> None:
    """Add ``descent admin …`` and ``descent token`` to the ``descent`` app."""
    app.command("token", rich_help_panel=panel)(token)
    app.add_typer(admin, name="admin", rich_help_panel=panel)
