"""A small synchronous client for the Descent API, for scripts, notebooks and dashboards.

    from service.client import Client

    with Client.from_config() as descent:          # flags > env > config file > defaults
        job = descent.submit({"dataset": {"name": "moons"}})
        for event in descent.events(job["id"]):   # server-sent events, resumed on reconnect
            if event.event == "epoch":
                print(event.data["epoch"], event.data["metrics"]["val_loss"])
        print(descent.job(job["id"])["status"])

        space = {"optimizer.lr": {"loguniform": [1e-4, 0.1]}}
        sweep = descent.create_sweep({"base": {"dataset": {"name": "digits"}}, "space": space})
        print(descent.wait_sweep(sweep["id"])["best"])  # sweep_events(): follow it live

It speaks HTTP only (httpx) and imports nothing heavy: no torch, no SQLAlchemy, not the
API. Every failure is a :class:`DescentError`: an :class:`ApiError` for an error answer
(with the server's ``status``, ``code``, ``message`` and ``fields``), an
:class:`Unreachable` when the server cannot be reached, a :class:`ConfigError` for a
config file that cannot be used.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

__all__ = [
    "DEFAULT_URL",
    "TERMINAL_STATUSES",
    "ApiError",
    "Client",
    "ClientConfig",
    "ConfigError",
    "DescentError",
    "Event",
    "SWEEP_PLOTS",
    "SWEEP_TERMINAL_STATUSES",
    "ServerSentEvent",
    "Unreachable",
    "config_path",
    "local_token_file",
    "parse_sse",
    "resolve_settings",
]

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "diverged", "pruned"})
#: How a sweep (or comparison) can end.
SWEEP_TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
#: The charts of a sweep: ``GET /v1/sweeps/{id}/plots/{kind}.{png|svg}``.
SWEEP_PLOTS = ("history", "parallel", "intermediate", "importance", "comparison")
#: A lab job's charts (``GET /v1/jobs/{id}/plots/{view}.{fmt}``).
LAB_PLOTS = ("range_test", "interpolation", "contour", "surface")

#: How to get a token, for the message of a 401 sent without one.
TOKEN_HELP = (
    "run `descent token` to print the local admin's token (the embedded default, "
    "`descent up`), then pass it with --token or set DESCENT_TOKEN (or `token` in the "
    "config file)"
)


# -- errors ------------------------------------------------------------------------------


class DescentError(Exception):
    """Anything that kept a request from getting an answer it could use."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(DescentError):
    """A config file that is missing (when named explicitly), not TOML, or malformed."""


class Unreachable(DescentError):
    """The server could not be reached, or stopped answering."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class ApiError(DescentError):
    """An error answer from the API: ``{"error": {"status", "code", "message", "fields"}}``.

    ``fields`` is a list of ``{"field", "message", "allowed"}`` dicts (empty when the problem
    is not with named fields). A body that is not the API's (a proxy's HTML page) still
    gives the status, code ``http_error`` and the start of the body as the message.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.fields = fields or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
            err = body["error"]
            return cls(
                int(err.get("status", response.status_code)),
                str(err.get("code", "http_error")),
                str(err.get("message", "")) or response.reason_phrase,
                [f for f in err.get("fields") or [] if isinstance(f, dict)],
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            text = response.text.strip()
            detail = f": {text[:200]}" if text else ""
            message = f"HTTP {response.status_code} {response.reason_phrase}{detail}"
            return cls(response.status_code, "http_error", message)

    def __str__(self) -> str:
        return self.message


# -- configuration -----------------------------------------------------------------------


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
    the file ``descent up`` writes (``service.config.Settings().token_file``)."""
    try:
        from service.config import Settings as ServerSettings

        return ServerSettings().token_file
    except Exception:  # settings that do not validate still name the same directory
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


# -- server-sent events ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    """One event as the wire has it (the SSE spec's fields, before any JSON decoding)."""

    event: str = "message"
    data: str = ""
    id: str | None = None  # the stream's last event id when this event was dispatched
    retry: int | None = None  # milliseconds, when a `retry:` line came with this event


def parse_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from the lines of a ``text/event-stream`` (the WHATWG rules): fields
    ``event``, ``data`` (several lines join with newlines), ``id`` (kept across events),
    ``retry``; comment lines start with ``:``; a blank line dispatches; an event cut off by
    the end of the stream is dropped. A ``retry`` with no data is reported on its own."""
    event_type = ""
    data: list[str] = []
    last_id: str | None = None
    retry: int | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event_type or "message", "\n".join(data), last_id, retry)
                retry = None
            elif retry is not None:
                yield ServerSentEvent("retry", "", last_id, retry)
                retry = None
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
        # any other field is ignored, as the spec says


@dataclass(frozen=True)
class Event:
    """A job event: ``status``, ``epoch`` or ``end``, with its decoded JSON ``data``.

    ``id`` is the last epoch delivered on the stream so far (what a reconnect resumes
    after), or ``None`` when the server sent none."""

    event: str
    id: int | None
    data: dict[str, Any] = field(default_factory=dict)


def _decode(raw: ServerSentEvent) -> Event:
    try:
        value = json.loads(raw.data)
    except ValueError:
        value = {"text": raw.data}
    if not isinstance(value, dict):
        value = {"value": value}
    try:
        event_id = int(raw.id) if raw.id not in (None, "") else None
    except ValueError:
        event_id = None
    return Event(raw.event, event_id, value)


# -- the client --------------------------------------------------------------------------


class Client:
    """The Descent API over HTTP. Use as a context manager, or call :meth:`close`.

    ``timeout`` bounds every ordinary request; an event stream waits up to
    ``stream_timeout`` for its next line (the server sends a keep-alive every 15 s).
    A stream that breaks is resumed where it left off, after ``backoff``, 2·``backoff``,
    … seconds; ``max_retries`` failures in a row (without an event in between) give up.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        stream_timeout: float = 60.0,
        backoff: float = 0.5,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        token_source: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.backoff = backoff
        self.max_retries = max_retries
        self.token_source = token_source or ("argument" if self.token else None)
        self._sleep: Callable[[float], None] = time.sleep
        headers = {"User-Agent": "descent-client/0.1", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_config(
        cls,
        url: str | None = None,
        token: str | None = None,
        config_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Client:
        """A client configured by :func:`resolve_settings` (arguments > env > file)."""
        settings = resolve_settings(url, token, config_path)
        return cls(settings.url, settings.token, token_source=settings.token_source, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'set' if self.token else 'none'})"

    # -- plumbing ------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        if isinstance(exc, httpx.ConnectTimeout):
            why = "connection timed out"
        elif isinstance(exc, httpx.TimeoutException):
            why = f"no answer within {self.timeout:g}s"
        elif isinstance(exc, httpx.ConnectError):
            text = str(exc).lower()
            why = "connection refused" if "refused" in text else (str(exc) or "cannot connect")
        else:
            why = str(exc) or type(exc).__name__
        hint = " — is `descent up` running?" if is_loopback_url(self.url) else ""
        return Unreachable(f"cannot reach {self.url}: {why}{hint}", self.url)

    def _error(self, response: httpx.Response) -> ApiError:
        err = ApiError.from_response(response)
        if err.status == 401:
            if not self.token:
                err.message = f"{self.url} needs an API token and none is configured: {TOKEN_HELP}"
            else:
                err.message = (
                    f"{err.message.rstrip('.')} (the token from {self.token_source} was "
                    f"refused by {self.url}; `descent token` prints the local admin's)"
                )
        return err

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; an error answer raises :class:`ApiError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                "bad_response",
                f"{method} {path}: expected JSON, got {response.headers.get('content-type')}",
            ) from None

    @staticmethod
    def _id(value: str) -> str:
        return quote(str(value), safe="")

    @staticmethod
    def _csv(values: str | Iterable[str] | None) -> str | None:
        if values is None:
            return None
        joined = values if isinstance(values, str) else ",".join(values)
        return joined or None

    @staticmethod
    def _params(**params: Any) -> dict[str, Any]:
        return {k: v for k, v in params.items() if v is not None}

    # -- jobs ----------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit a job spec; returns the queued job (every default filled in)."""
        return self._json("POST", "/v1/jobs", json=spec)

    def jobs(
        self,
        status: str | Iterable[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: str = "-created_at",
        kind: str | Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """One page of your jobs: ``{"items", "total", "limit", "offset"}``; ``kind``
        filters by job kind (train, lr_range_test, landscape)."""
        params = self._params(
            status=self._csv(status), kind=self._csv(kind), limit=limit, offset=offset, sort=sort
        )
        return self._json("GET", "/v1/jobs", params=params)

    def iter_jobs(
        self,
        status: str | Iterable[str] | None = None,
        sort: str = "-created_at",
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Every job that matches, page after page."""
        offset = 0
        while True:
            page = self.jobs(status, limit=page_size, offset=offset, sort=sort)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def job(self, job_id: str) -> dict[str, Any]:
        """One job: status, epochs, best epoch and value, final metrics, spec."""
        return self._json("GET", f"/v1/jobs/{self._id(job_id)}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask for a job to stop (409 once it has ended); returns the job."""
        return self._json("POST", f"/v1/jobs/{self._id(job_id)}/cancel")

    def result(self, job_id: str) -> dict[str, Any]:
        """What a lab job found (``{"job_id", "kind", "status", "result"}``): a range
        test's suggestions and curve, a landscape's line and grid; a training job with
        ``"auto"`` rates: the choice. 409 (ApiError) while there is none."""
        return self._json("GET", f"/v1/jobs/{self._id(job_id)}/result")

    def lab_plot(self, job_id: str, view: str, fmt: str = "png") -> bytes:
        """A lab job's chart as PNG or SVG bytes: ``range_test`` (loss against lr with the
        suggestions marked), ``interpolation`` (the loss from the initial to the final
        weights), ``contour`` or ``surface`` (the 2-D landscape)."""
        if view not in LAB_PLOTS:
            raise ValueError(f"lab plot must be one of {', '.join(LAB_PLOTS)}, not {view!r}")
        path = f"/v1/jobs/{self._id(job_id)}/plots/{view}.{self._format(fmt)}"
        return self.request("GET", path, headers={"Accept": "*/*"}).content

    def metrics(
        self,
        job_id: str,
        names: str | Iterable[str] | None = None,
        epoch_from: int | None = None,
        epoch_to: int | None = None,
    ) -> dict[str, Any]:
        """Per-epoch metrics: ``{"job_id", "status", "names", "epochs": [{...}, …]}``."""
        params = self._params(names=self._csv(names), epoch_from=epoch_from, epoch_to=epoch_to)
        return self._json("GET", f"/v1/jobs/{self._id(job_id)}/metrics", params=params)

    def metrics_csv(self, job_id: str, names: str | Iterable[str] | None = None) -> str:
        """Per-epoch metrics as CSV text, a header row first."""
        params = self._params(names=self._csv(names), format="csv")
        return self.request("GET", f"/v1/jobs/{self._id(job_id)}/metrics", params=params).text

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """Each attempt at the job: worker, epoch it resumed from, how it ended."""
        return self._json("GET", f"/v1/jobs/{self._id(job_id)}/attempts")

    def catalog(self) -> dict[str, Any]:
        """Everything a spec accepts: datasets, models, optimizers, schedules, limits."""
        return self._json("GET", "/v1/catalog")

    def me(self) -> dict[str, Any]:
        """The user the token belongs to."""
        return self._json("GET", "/v1/me")

    # -- plots ---------------------------------------------------------------------------

    @staticmethod
    def _format(fmt: str) -> str:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("png", "svg"):
            raise ValueError(f"plot format must be png or svg, not {fmt!r}")
        return fmt

    @staticmethod
    def _log(value: bool | str | Iterable[str] | None) -> str | None:
        if value is None or isinstance(value, bool):
            return None if value is None else str(value).lower()
        return Client._csv(value)

    def plot(
        self,
        job_id: str,
        fmt: str = "png",
        metrics: str | Iterable[str] | None = None,
        log: bool | str | Iterable[str] | None = None,
    ) -> bytes:
        """A job's learning curves as PNG or SVG bytes. ``metrics``: which to draw (default:
        the losses, the task's quality metric and lr); ``log``: a logarithmic y axis on
        every panel (``True``), none (``False``), the panels of the metrics named, or
        ``None`` for the server's choice (panels spanning three decades or more)."""
        params = self._params(metrics=self._csv(metrics), log=self._log(log))
        path = f"/v1/jobs/{self._id(job_id)}/plot.{self._format(fmt)}"
        return self.request("GET", path, params=params, headers={"Accept": "*/*"}).content

    def compare_plot(
        self,
        job_ids: Iterable[str],
        metric: str = "val_loss",
        fmt: str = "png",
        log: bool = False,
    ) -> bytes:
        """One metric of several jobs on one chart, as PNG or SVG bytes."""
        params = self._params(jobs=self._csv(job_ids), metric=metric, log=self._log(bool(log)))
        path = f"/v1/plots/compare.{self._format(fmt)}"
        return self.request("GET", path, params=params, headers={"Accept": "*/*"}).content

    # -- the optimizer playground --------------------------------------------------------

    def playground(self, request: dict[str, Any], fmt: str = "json") -> Any:
        """Run optimizers on a 2-D test function (``POST /v1/playground``): ``request`` is
        ``{"function": {"name": "rosenbrock"}, "runs": [{"optimizer": {...}}, …], …}``.
        Returns the result as a dict (``fmt="json"``), or the contour plot with every path
        as PNG or SVG bytes (``fmt="png"`` or ``"svg"``)."""
        if fmt == "json":
            return self._json("POST", "/v1/playground", json=request)
        params = {"format": self._format(fmt)}
        response = self.request(
            "POST", "/v1/playground", json=request, params=params, headers={"Accept": "*/*"}
        )
        return response.content

    # -- sweeps and comparisons ----------------------------------------------------------

    def create_sweep(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Start a sweep (``POST /v1/sweeps``), or a comparison (``POST /v1/comparisons``)
        when the spec has ``configurations``; returns the sweep, running with no trials yet
        (the workers create them)."""
        path = "/v1/comparisons" if "configurations" in spec else "/v1/sweeps"
        return self._json("POST", path, json=spec)

    def sweeps(
        self,
        status: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of your sweeps, newest first: ``{"items", "total", "limit", "offset"}``.
        ``kind``: ``sweep`` or ``comparison``."""
        params = self._params(
            status=self._csv(status), kind=self._csv(kind), limit=limit, offset=offset
        )
        return self._json("GET", "/v1/sweeps", params=params)

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """One sweep: status, counts by trial state, epochs spent, the best trial."""
        return self._json("GET", f"/v1/sweeps/{self._id(sweep_id)}")

    def trials(
        self,
        sweep_id: str,
        state: str | Iterable[str] | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """A page of the sweep's trials (the leaderboard): ``state`` filters
        (``running``, ``complete``, ``pruned`` …), ``sort`` is ``value``, ``-value``,
        ``number``, ``-number``, ``epochs`` … (default ``best``: complete trials best first,
        then pruned, failed and cancelled ones, unfinished last)."""
        params = self._params(state=self._csv(state), sort=sort, limit=limit, offset=offset)
        return self._json("GET", f"/v1/sweeps/{self._id(sweep_id)}/trials", params=params)

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Stop a sweep: its queued trials never start, its running ones stop (409 once it
        has ended); returns the sweep."""
        return self._json("POST", f"/v1/sweeps/{self._id(sweep_id)}/cancel")

    def importance(self, sweep_id: str) -> dict[str, Any]:
        """Hyperparameter importance: ``{"metric", "params": [{"name", "importance"}],
        "trials_used"}`` (409 before two trials have completed)."""
        return self._json("GET", f"/v1/sweeps/{self._id(sweep_id)}/importance")

    def comparison(self, sweep_id: str) -> dict[str, Any]:
        """Per configuration the mean, std and 95% CI over seeds, and paired tests of the
        best against each other (409 for a sweep with fewer than 2 repeats)."""
        return self._json("GET", f"/v1/sweeps/{self._id(sweep_id)}/comparison")

    def sweep_plot(self, sweep_id: str, kind: str = "history", fmt: str = "png") -> bytes:
        """A sweep's chart as PNG or SVG bytes: ``history`` (objective by trial, running
        best), ``parallel`` (parallel coordinates), ``intermediate`` (every trial's curve,
        pruned ones marked), ``importance``, or ``comparison`` (mean curves with bands)."""
        if kind not in SWEEP_PLOTS:
            raise ValueError(
                f"sweep plot kind must be one of {', '.join(SWEEP_PLOTS)}, not {kind!r}"
            )
        path = f"/v1/sweeps/{self._id(sweep_id)}/plots/{kind}.{self._format(fmt)}"
        return self.request("GET", path, headers={"Accept": "*/*"}).content

    def sweep_events(self, sweep_id: str, after: int | None = None) -> Iterator[Event]:
        """The sweep's events as they happen, until ``end``: ``sweep`` (status, counts,
        best), ``trial`` (a trial's job started, was pruned, ended …: ``trial``, ``job_id``,
        ``repeat``, ``status``, ``epochs_completed``, ``objective``, ``params``) and
        ``epoch`` (one per epoch of any trial, after event number ``after``). Resumed with
        ``Last-Event-ID`` like :meth:`events`."""
        path = f"/v1/sweeps/{self._id(sweep_id)}/events"
        return self._stream(path, after, f"sweep {sweep_id}")

    def wait_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Block until the sweep ends (following its events); returns the final sweep."""
        for event in self.sweep_events(sweep_id):
            if event.event == "end":
                break
            if event.event == "sweep" and event.data.get("status") in SWEEP_TERMINAL_STATUSES:
                break
        return self.sweep(sweep_id)

    # -- live events ---------------------------------------------------------------------

    def events(self, job_id: str, after: int | None = None) -> Iterator[Event]:
        """The job's events as they happen: ``status`` (on connect and on each change),
        ``epoch`` (one per epoch after ``after``, or from the first) and a final ``end``,
        after which the iterator stops.

        A stream the server closes without ``end`` (its maximum lifetime) or that breaks is
        reopened with ``Last-Event-ID`` set to the last id seen, so no epoch is missed or
        repeated. An error answer (404, 401, …) raises :class:`ApiError`; a server that
        stays unreachable for ``max_retries`` tries raises :class:`Unreachable`.
        """
        return self._stream(f"/v1/jobs/{self._id(job_id)}/events", after, f"job {job_id}")

    def _stream(self, path: str, after: int | None, what: str) -> Iterator[Event]:
        """The events of an SSE endpoint until ``end``, resumed with ``Last-Event-ID``
        (and ``?after=``) after a close or a network error, with backoff."""
        timeout = httpx.Timeout(self.timeout, read=self.stream_timeout)
        last = after
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            params: dict[str, Any] = {}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
                params["after"] = last
            received = False
            problem: DescentError | None = None
            try:
                with self._http.stream(
                    "GET", path, headers=headers, params=params, timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        err = self._error(response)
                        if err.status < 500:
                            raise err
                        problem = err  # 502/503 while the server restarts: try again
                    else:
                        for raw in parse_sse(response.iter_lines()):
                            if raw.event == "retry":
                                continue
                            event = _decode(raw)
                            if event.id is not None:
                                last = event.id
                            received = True
                            failures = 0
                            yield event
                            if event.event == "end":
                                return
            except httpx.TransportError as exc:
                problem = self._unreachable(exc)
            if received and problem is None:
                continue  # closed at the end of its lifetime: resume at once
            failures += 1
            if failures > self.max_retries:
                if problem is None:
                    problem = Unreachable(
                        f"{self.url} keeps closing the event stream of {what} "
                        "without sending an event",
                        self.url,
                    )
                raise problem
            self._sleep(min(self.backoff * 2 ** (failures - 1), 10.0))

    def wait(self, job_id: str) -> dict[str, Any]:
        """Block until the job ends (following its events); returns the final job."""
        for event in self.events(job_id):
            if event.event == "end":
                break
            if event.event == "status" and event.data.get("status") in TERMINAL_STATUSES:
                break
        return self.job(job_id)
