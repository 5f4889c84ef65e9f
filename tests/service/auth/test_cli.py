"""`descent admin …` and `descent token` against a real SQLite file; the API checks that
the tokens they print work (or no longer do)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import ROOT, bearer
from typer.testing import CliRunner

from service.cli import app
from service.cli.server import is_loopback
from service.main import create_app


@pytest.fixture
def cli(tmp_path: Path):  # noqa: ANN201
    """Runs `descent …` in-process with DESCENT_DATA_DIR set to a fresh directory."""
    runner = CliRunner()
    env = {"DESCENT_DATA_DIR": str(tmp_path / "data"), "DESCENT_AUTH": "token"}

    def run(*args: str, code: int = 0):  # noqa: ANN202
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result

    run.env = env  # type: ignore[attr-defined]
    return run


@pytest.fixture
def client(cli):  # noqa: ANN001, ANN201
    """The API on the CLI's database (created by the first `descent admin` command)."""
    from service.config import Settings

    cli("admin", "users")  # migrates the embedded database
    settings = Settings(data_dir=Path(cli.env["DESCENT_DATA_DIR"]))
    with TestClient(create_app(settings)) as c:
        yield c


def me(client, token: str):  # noqa: ANN001, ANN201
    return client.get("/v1/me", headers=bearer(token))


def test_create_user_prints_its_first_token_once_on_stdout(cli, client):
    out = cli("admin", "create-user", "alice", "--admin")
    token = out.stdout.strip()
    assert token.startswith("dsc_") and "\n" not in token
    assert "created admin 'alice'" in out.stderr
    r = me(client, token)
    assert r.status_code == 200 and (r.json()["name"], r.json()["role"]) == ("alice", "admin")
    bob = cli("admin", "create-user", "bob").stdout.strip()
    assert me(client, bob).json()["role"] == "user"
    listing = cli("admin", "users").stdout
    lines = listing.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE", "STATUS", "CREATED"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["alice"][2:4] == ["admin", "enabled"]
    assert rows["bob"][2:4] == ["user", "enabled"]
    # The secrets appear nowhere but in the one output that created them.
    assert token not in listing and bob not in cli("admin", "tokens", "bob").stdout


def test_disable_and_enable_user(cli, client):
    token = cli("admin", "create-user", "bob").stdout.strip()
    cli("admin", "disable-user", "bob")
    assert me(client, token).status_code == 401
    assert "disabled" in cli("admin", "users").stdout
    cli("admin", "enable-user", "bob")
    assert me(client, token).status_code == 200


def test_create_list_and_revoke_tokens(cli, client):
    cli("admin", "create-user", "bob")
    out = cli("admin", "create-token", "bob", "--token-name", "ci", "--expires-in-days", "7")
    token = out.stdout.strip()
    assert me(client, token).json()["name"] == "bob"
    lines = cli("admin", "tokens", "bob").stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "PREFIX"]
    by_name = {line.split()[1]: line.split() for line in lines[1:]}
    assert set(by_name) == {"first", "ci"}
    ci = by_name["ci"]
    assert ci[2] == token[:12] + "…"
    assert ci[-1] == "-"  # not revoked
    assert ci[-3] != "-"  # expires
    cli("admin", "revoke-token", ci[0])
    assert me(client, token).status_code == 401
    revoked = {line.split()[1]: line for line in cli("admin", "tokens", "bob").stdout.splitlines()}
    assert not revoked["ci"].rstrip().endswith(" -")


def test_admin_commands_report_errors_with_exit_code_1(cli):
    cli("admin", "create-user", "bob")
    assert "already exists" in cli("admin", "create-user", "bob", code=1).stderr
    assert "no user named 'zed'" in cli("admin", "disable-user", "zed", code=1).stderr
    assert "no user named 'zed'" in cli("admin", "create-token", "zed", code=1).stderr
    assert "no token with id" in cli("admin", "revoke-token", "nope", code=1).stderr
    assert "not allowed" in cli("admin", "create-user", "../x", code=1).stderr
    cli("admin", "create-user", "root", "--admin")
    assert "last enabled admin" in cli("admin", "disable-user", "root", code=1).stderr


def test_descent_token_mints_once_then_prints_the_same_token(cli, client):
    data = Path(cli.env["DESCENT_DATA_DIR"])
    first = cli("token")
    token = first.stdout.strip()
    assert "minted" in first.stderr
    path = data / "token"
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli("token").stdout.strip() == token
    r = me(client, token)
    assert (r.json()["name"], r.json()["role"]) == ("admin", "admin")
    # A lost file: a new token for the same local admin.
    path.unlink()
    again = cli("token").stdout.strip()
    assert again != token and me(client, again).json()["id"] == r.json()["id"]


def test_descent_token_prints_what_descent_up_wrote(cli):
    from service.auth.service import ensure_local_admin
    from service.config import Settings

    settings = Settings(data_dir=Path(cli.env["DESCENT_DATA_DIR"]))
    cli("admin", "users")  # migrate
    token = ensure_local_admin(settings)
    assert token and cli("token").stdout.strip() == token


@pytest.mark.parametrize("command", ["up", "api"])
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_binding_beyond_loopback_without_auth_is_refused(cli, command, host):
    cli.env["DESCENT_AUTH"] = "none"
    out = cli(command, "--host", host, "--port", "1", code=2)
    assert "refusing to listen" in out.stderr and "DESCENT_AUTH=token" in out.stderr


def test_loopback_addresses():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "localhost.example.com", "", "128.0.0.1"):
        assert not is_loopback(host), host


def test_descent_token_as_a_user_runs_it(tmp_path):
    """The installed entry point, in a fresh process: minted, then printed again."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env["DESCENT_DATA_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "service.cli", "token"]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert first.stdout.startswith("dsc_") and first.stdout == second.stdout
    assert (tmp_path / "token").read_text() == first.stdout
