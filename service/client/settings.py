"""Where the client talks to and with which token: flags, environment, config file,
defaults — each setting from the first that has it."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from service.client.errors import ConfigError

__all__ = [
    "DEFAULT_URL",
    "ClientConfig",
    "config_path",
    "is_loopback_url",
    "local_token_file",
    "read_config",
    "resolve_settings",
]

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientConfig:
    """Where the client talks to, with what, and where each came from (for messages)."""

    url: str = DEFAULT_URL
    token: str | None = None
    url_source: str = "default"
    token_source: str | None = None
    config_file: Path | None = None


def config_path(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it was named explicitly (then it must exist):
    ``explicit``, else ``$DESCENT_CONFIG``, else ``$XDG_CONFIG_HOME/descent/config.toml``
    (``~/.config/descent/config.toml``)."""
    if explicit:
        return Path(explicit).expanduser(), True
    if env := os.environ.get("DESCENT_CONFIG"):
        return Path(env).expanduser(), True
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "descent" / "config.toml", False


def read_config(path: Path, *, required: bool) -> dict[str, str]:
    """``url`` and ``token`` from a TOML file; ``{}`` for a default path that is absent."""
    import tomllib

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    out: dict[str, str] = {}
    for key in ("url", "token"):
        if key in doc:
            value = doc[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"config file {path}: `{key}` must be a non-empty string")
            out[key] = value.strip()
    return out


def local_token_file() -> Path:
    """The embedded default's local admin token: ``<DESCENT_DATA_DIR or ./.descent>/token``,
    the file ``descent up`` writes. The server's ``Settings().token_file`` names the same
    file (a test keeps them equal); the client reads the variable itself rather than
    import the server's settings."""
    return Path(os.environ.get("DESCENT_DATA_DIR") or ".descent") / "token"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ``::1``, ``localhost``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_settings(
    url: str | None = None,
    token: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> ClientConfig:
    """Each setting from the first place that has it: the arguments, the environment
    (``DESCENT_URL``, ``DESCENT_TOKEN``), the config file, then the defaults — the URL
    ``http://127.0.0.1:8000`` and the local token file of the embedded default.

    The local token file is only used for a server on this machine: the local admin's
    token is never sent anywhere else.
    """
    path, required = config_path(config_file)
    config = read_config(path, required=required)
    where = f"config file {path}"
    url_value, url_source = DEFAULT_URL, "default"
    for value, source in (
        (url, "--url"),
        (os.environ.get("DESCENT_URL"), "DESCENT_URL"),
        (config.get("url"), where),
    ):
        if value:
            url_value, url_source = value, source
            break
    token_value: str | None = None
    token_source: str | None = None
    for value, source in (
        (token, "--token"),
        (os.environ.get("DESCENT_TOKEN"), "DESCENT_TOKEN"),
        (config.get("token"), where),
    ):
        if value:
            token_value, token_source = value.strip(), source
            break
    if token_value is None and is_loopback_url(url_value):
        token_path = local_token_file()
        try:
            text = token_path.read_text().strip()
        except OSError:
            text = ""
        if text:
            token_value, token_source = text, f"token file {token_path}"
    return ClientConfig(
        url=url_value.rstrip("/"),
        token=token_value,
        url_source=url_source,
        token_source=token_source,
        config_file=path if config else None,
    )
