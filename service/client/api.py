"""The :class:`Client`: one method per API route, each returning the API's own response
model (``JobRead``, ``SweepPage``, …), parsed from the answer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from service.auth.schemas import UserRead
from service.client.choices import JOB_ENDED, SWEEP_ENDED, ImageFormat, LabPlot, SweepPlot
from service.client.errors import ApiError, DescentError, Unreachable
from service.client.settings import DEFAULT_URL, is_loopback_url, resolve_settings
from service.client.sse import Event, decode_event, parse_sse
from service.fleet.schemas import FleetRead
from service.jobs.schemas import AttemptRead, JobPage, JobRead, MetricsRead, ResultRead
from service.playground.schemas import PlaygroundResult
from service.predict.schemas import PredictionRead
from service.projects.schemas import ProjectPage, ProjectRead
from service.spec import JobSpec
from service.sweeps.schemas import (
    ComparisonRead,
    ImportanceRead,
    SweepPage,
    SweepRead,
    TrialPage,
)

__all__ = ["Client"]

Model = TypeVar("Model", bound=BaseModel)

#: How to get a token, for the message of a 401 sent without one.
TOKEN_HELP = (
    "run `descent token` to print the local admin's token (the embedded default, "
    "`descent up`), then pass it with --token or set DESCENT_TOKEN (or `token` in the "
    "config file)"
)
_ATTEMPTS = TypeAdapter(list[AttemptRead])


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

    def _read(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        """Send one request and parse the answer as the API's ``model``."""
        response = self.request(method, path, **kwargs)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._bad_response(method, path, response, model.__name__, exc) from None

    @staticmethod
    def _bad_response(
        method: str, path: str, response: httpx.Response, expected: str, exc: ValidationError
    ) -> ApiError:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        return ApiError(
            response.status_code,
            "bad_response",
            f"{method} {path}: the answer is not a {expected} "
            f"({response.headers.get('content-type')}; {where}: {first['msg']}); "
            "is the server another version of Descent?",
        )

    def _image(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        return self.request("GET", path, params=params, headers={"Accept": "*/*"}).content

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

    @staticmethod
    def _format(fmt: str) -> str:
        try:
            return ImageFormat(str(fmt).lower().lstrip(".")).value
        except ValueError:
            raise ValueError(f"plot format must be png or svg, not {fmt!r}") from None

    @staticmethod
    def _body(spec: Mapping[str, Any] | JobSpec) -> Any:
        # What the user set, as they set it: the server fills in the defaults itself.
        if isinstance(spec, JobSpec):
            return spec.model_dump(mode="json", exclude_unset=True)
        return dict(spec)

    # -- jobs ----------------------------------------------------------------------------

    def submit(
        self,
        spec: Mapping[str, Any] | JobSpec,
        *,
        project: str | None = None,
        tags: Mapping[str, str] | None = None,
        note: str | None = None,
    ) -> JobRead:
        """Submit a job spec (a mapping as a spec file has it, or a :class:`JobSpec`);
        returns the queued job, every default filled in. ``project``, ``tags`` and
        ``note`` label it (docs/search.md)."""
        body = {**self._body(spec), **self._params(project=project, note=note)}
        if tags is not None:
            body["tags"] = dict(tags)
        return self._read(JobRead, "POST", "/v1/jobs", json=body)

    def jobs(
        self,
        status: str | Iterable[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: str = "-created_at",
        kind: str | Iterable[str] | None = None,
        *,
        project: str | None = None,
        filter: str | None = None,
        name: str | None = None,
    ) -> JobPage:
        """One page of your jobs; ``kind`` filters by job kind (train, lr_range_test,
        landscape), ``project`` by project name, ``filter`` is the search language
        (``"optimizer.name = 'adam' and saved.val_accuracy > 0.97"``, docs/search.md) and
        ``sort`` any field it names (``-saved.val_accuracy``)."""
        params = self._params(
            status=self._csv(status),
            kind=self._csv(kind),
            limit=limit,
            offset=offset,
            sort=sort,
            project=project,
            filter=filter,
            name=name,
        )
        return self._read(JobPage, "GET", "/v1/jobs", params=params)

    # -- projects, tags and notes ---------------------------------------------------------

    @staticmethod
    def _labels(
        tags: Mapping[str, str] | None,
        merge_tags: Mapping[str, str | None] | None,
        note: str | None,
        project: str | None | Literal[False],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = dict(tags)
        if merge_tags is not None:
            body["merge_tags"] = dict(merge_tags)
        if note is not None:
            body["note"] = note
        if project is not False:
            body["project"] = project
        return body

    def update_job(
        self,
        job_id: str,
        *,
        tags: Mapping[str, str] | None = None,
        merge_tags: Mapping[str, str | None] | None = None,
        note: str | None = None,
        project: str | None | Literal[False] = False,
    ) -> JobRead:
        """Change a job's labels (``PATCH /v1/jobs/{id}``): ``tags`` replaces them all,
        ``merge_tags`` sets some (a None value removes that tag), ``note`` (``""``
        clears it), ``project`` (None: out of any; False, the default: unchanged)."""
        body = self._labels(tags, merge_tags, note, project)
        return self._read(JobRead, "PATCH", f"/v1/jobs/{self._id(job_id)}", json=body)

    def update_sweep(
        self,
        sweep_id: str,
        *,
        tags: Mapping[str, str] | None = None,
        merge_tags: Mapping[str, str | None] | None = None,
        note: str | None = None,
        project: str | None | Literal[False] = False,
    ) -> SweepRead:
        """Change a sweep's labels, as :meth:`update_job` does a job's."""
        body = self._labels(tags, merge_tags, note, project)
        return self._read(SweepRead, "PATCH", f"/v1/sweeps/{self._id(sweep_id)}", json=body)

    def projects(self, limit: int = 200, offset: int = 0) -> ProjectPage:
        """Your projects by name, each with its count of jobs and sweeps."""
        params = {"limit": limit, "offset": offset}
        return self._read(ProjectPage, "GET", "/v1/projects", params=params)

    def project(self, name_or_id: str) -> ProjectRead:
        """Your project of this name (or id); ApiError 404 when there is none."""
        offset = 0
        while True:
            page = self.projects(offset=offset)
            for p in page.items:
                if name_or_id in (p.name, p.id):
                    return p
            offset += len(page.items)
            if not page.items or offset >= page.total:
                message = f"no project named {name_or_id!r}"
                raise ApiError(404, "not_found", message)

    def rename_project(self, project_id: str, name: str) -> ProjectRead:
        """Rename a project (ApiError 409 if you have one of that name)."""
        path = f"/v1/projects/{self._id(project_id)}"
        return self._read(ProjectRead, "PATCH", path, json={"name": name})

    def delete_project(self, project_id: str) -> None:
        """Delete a project; its jobs and sweeps stay, in no project."""
        self.request("DELETE", f"/v1/projects/{self._id(project_id)}")

    def iter_jobs(
        self,
        status: str | Iterable[str] | None = None,
        sort: str = "-created_at",
        page_size: int = 100,
        kind: str | Iterable[str] | None = None,
    ) -> Iterator[JobRead]:
        """Every job that matches, page after page."""
        offset = 0
        while True:
            page = self.jobs(status, limit=page_size, offset=offset, sort=sort, kind=kind)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def job(self, job_id: str) -> JobRead:
        """One job: status, epochs, best epoch and value, final metrics, spec."""
        return self._read(JobRead, "GET", f"/v1/jobs/{self._id(job_id)}")

    def cancel(self, job_id: str) -> JobRead:
        """Ask for a job to stop (409 once it has ended); returns the job."""
        return self._read(JobRead, "POST", f"/v1/jobs/{self._id(job_id)}/cancel")

    def result(self, job_id: str) -> ResultRead:
        """What a lab job found: a range test's suggestions and curve, a landscape's line
        and grid; a training job with ``"auto"`` rates: the choice. 409 (ApiError) while
        there is none."""
        return self._read(ResultRead, "GET", f"/v1/jobs/{self._id(job_id)}/result")

    def lab_plot(self, job_id: str, view: LabPlot | str, fmt: str = "png") -> bytes:
        """A lab job's chart as PNG or SVG bytes: ``range_test`` (loss against lr with the
        suggestions marked), ``interpolation`` (the loss from the initial to the final
        weights), ``contour`` or ``surface`` (the 2-D landscape)."""
        try:
            view = LabPlot(view)
        except ValueError:
            choices = ", ".join(LabPlot)
            raise ValueError(f"lab plot must be one of {choices}, not {view!r}") from None
        return self._image(f"/v1/jobs/{self._id(job_id)}/plots/{view}.{self._format(fmt)}")

    def metrics(
        self,
        job_id: str,
        names: str | Iterable[str] | None = None,
        epoch_from: int | None = None,
        epoch_to: int | None = None,
    ) -> MetricsRead:
        """Per-epoch metrics: the names, then one row per epoch."""
        params = self._params(names=self._csv(names), epoch_from=epoch_from, epoch_to=epoch_to)
        return self._read(MetricsRead, "GET", f"/v1/jobs/{self._id(job_id)}/metrics", params=params)

    def metrics_csv(self, job_id: str, names: str | Iterable[str] | None = None) -> str:
        """Per-epoch metrics as CSV text, a header row first."""
        params = self._params(names=self._csv(names), format="csv")
        return self.request("GET", f"/v1/jobs/{self._id(job_id)}/metrics", params=params).text

    def model(self, job_id: str, format: str = "bundle") -> bytes:
        """A succeeded job's trained model as bytes: ``bundle`` (a zip for
        ``descent.load_model``), ``onnx`` or ``state_dict`` (docs/models.md)."""
        if format not in ("bundle", "onnx", "state_dict"):
            raise ValueError(f"model format must be bundle, onnx or state_dict, not {format!r}")
        path = f"/v1/jobs/{self._id(job_id)}/model"
        return self._image(path, params={"format": format})

    def attempts(self, job_id: str) -> list[AttemptRead]:
        """Each attempt at the job: worker, epoch it resumed from, how it ended."""
        path = f"/v1/jobs/{self._id(job_id)}/attempts"
        response = self.request("GET", path)
        try:
            return _ATTEMPTS.validate_json(response.content)
        except ValidationError as exc:
            raise self._bad_response("GET", path, response, "list of AttemptRead", exc) from None

    def catalog(self) -> dict[str, Any]:
        """Everything a spec accepts: datasets, models, optimizers, schedules, limits. A
        document read off the spec's models (the API declares no response model)."""
        response = self.request("GET", "/v1/catalog")
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ApiError(response.status_code, "bad_response", "GET /v1/catalog: not JSON")
        return doc

    def me(self) -> UserRead:
        """The user the token belongs to."""
        return self._read(UserRead, "GET", "/v1/me")

    def workers(self, state: str | Iterable[str] | None = None, *, all: bool = False) -> FleetRead:
        """The worker fleet and its queues (admins only: a 403 :class:`ApiError` for
        anyone else). ``state`` lists only workers in those states (``"ready,lost"``);
        ``all`` adds those that ended more than a day ago (docs/fleet.md)."""
        params = self._params(state=self._csv(state), all="true" if all else None)
        return self._read(FleetRead, "GET", "/v1/workers", params=params)

    # -- plots ---------------------------------------------------------------------------

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
        return self._image(f"/v1/jobs/{self._id(job_id)}/plot.{self._format(fmt)}", params)

    def compare_plot(
        self,
        job_ids: Iterable[str],
        metric: str = "val_loss",
        fmt: str = "png",
        log: bool = False,
    ) -> bytes:
        """One metric of several jobs on one chart, as PNG or SVG bytes."""
        params = self._params(jobs=self._csv(job_ids), metric=metric, log=self._log(bool(log)))
        return self._image(f"/v1/plots/compare.{self._format(fmt)}", params)

    # -- predictions ---------------------------------------------------------------------

    def predict(
        self,
        job_id: str,
        rows: Sequence[Sequence[float] | Mapping[str, float]],
        extra_columns: Literal["refuse", "ignore"] = "refuse",
    ) -> PredictionRead:
        """A succeeded job's predictions for raw ``rows``: each a list in the model's
        feature order, or a mapping of feature name to value. Classification answers the
        labels and each class's probability; regression the values in the target's units.
        Columns the model does not take are refused (422) unless ``extra_columns="ignore"``."""
        body = {"rows": [dict(r) if isinstance(r, Mapping) else list(r) for r in rows]}
        return self._read(
            PredictionRead,
            "POST",
            f"/v1/jobs/{self._id(job_id)}/predict",
            json=body,
            params={"extra_columns": extra_columns},
        )

    @overload
    def predict_csv(
        self,
        job_id: str,
        data: bytes | str,
        extra_columns: Literal["refuse", "ignore"] = "refuse",
        fmt: Literal["json"] = "json",
    ) -> PredictionRead: ...

    @overload
    def predict_csv(
        self,
        job_id: str,
        data: bytes | str,
        extra_columns: Literal["refuse", "ignore"] = "refuse",
        *,
        fmt: Literal["csv"],
    ) -> str: ...

    def predict_csv(
        self,
        job_id: str,
        data: bytes | str,
        extra_columns: Literal["refuse", "ignore"] = "refuse",
        fmt: Literal["json", "csv"] = "json",
    ) -> PredictionRead | str:
        """Predictions for a CSV text (a header naming every feature, any order, then one
        line per row), as :meth:`predict` answers them or, with ``fmt="csv"``, as CSV text
        (``prediction``, then ``probability_<label>`` per class)."""
        path = f"/v1/jobs/{self._id(job_id)}/predict"
        content = data.encode() if isinstance(data, str) else data
        kwargs: dict[str, Any] = {
            "content": content,
            "params": {"extra_columns": extra_columns},
            "headers": {"Content-Type": "text/csv"},
        }
        if fmt == "json":
            return self._read(PredictionRead, "POST", path, **kwargs)
        kwargs["params"]["format"] = "csv"
        kwargs["headers"]["Accept"] = "text/csv"
        return self.request("POST", path, **kwargs).text

    # -- the optimizer playground --------------------------------------------------------

    @overload
    def playground(
        self, request: Mapping[str, Any], fmt: Literal["json"] = "json"
    ) -> PlaygroundResult: ...

    @overload
    def playground(self, request: Mapping[str, Any], fmt: str) -> PlaygroundResult | bytes: ...

    def playground(self, request: Mapping[str, Any], fmt: str = "json") -> PlaygroundResult | bytes:
        """Run optimizers on a 2-D test function (``POST /v1/playground``): ``request`` is
        ``{"function": {"name": "rosenbrock"}, "runs": [{"optimizer": {...}}, …], …}``.
        Returns the result (``fmt="json"``), or the contour plot with every path as PNG or
        SVG bytes (``fmt="png"`` or ``"svg"``)."""
        if fmt == "json":
            return self._read(PlaygroundResult, "POST", "/v1/playground", json=dict(request))
        params = {"format": self._format(fmt)}
        response = self.request(
            "POST", "/v1/playground", json=dict(request), params=params, headers={"Accept": "*/*"}
        )
        return response.content

    # -- sweeps and comparisons ----------------------------------------------------------

    def create_sweep(self, spec: Mapping[str, Any]) -> SweepRead:
        """Start a sweep (``POST /v1/sweeps``), or a comparison (``POST /v1/comparisons``)
        when the spec has ``configurations``; returns the sweep, running with no trials yet
        (the workers create them)."""
        path = "/v1/comparisons" if "configurations" in spec else "/v1/sweeps"
        return self._read(SweepRead, "POST", path, json=dict(spec))

    def sweeps(
        self,
        status: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> SweepPage:
        """One page of your sweeps, newest first. ``kind``: ``sweep`` or ``comparison``."""
        params = self._params(
            status=self._csv(status), kind=self._csv(kind), limit=limit, offset=offset
        )
        return self._read(SweepPage, "GET", "/v1/sweeps", params=params)

    def sweep(self, sweep_id: str) -> SweepRead:
        """One sweep: status, counts by trial state, epochs spent, the best trial."""
        return self._read(SweepRead, "GET", f"/v1/sweeps/{self._id(sweep_id)}")

    def trials(
        self,
        sweep_id: str,
        state: str | Iterable[str] | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TrialPage:
        """A page of the sweep's trials (the leaderboard): ``state`` filters
        (``running``, ``complete``, ``pruned`` …), ``sort`` is ``value``, ``-value``,
        ``number``, ``-number``, ``epochs`` … (default ``best``: complete trials best first,
        then pruned, failed and cancelled ones, unfinished last)."""
        params = self._params(state=self._csv(state), sort=sort, limit=limit, offset=offset)
        path = f"/v1/sweeps/{self._id(sweep_id)}/trials"
        return self._read(TrialPage, "GET", path, params=params)

    def cancel_sweep(self, sweep_id: str) -> SweepRead:
        """Stop a sweep: its queued trials never start, its running ones stop (409 once it
        has ended); returns the sweep."""
        return self._read(SweepRead, "POST", f"/v1/sweeps/{self._id(sweep_id)}/cancel")

    def importance(self, sweep_id: str) -> ImportanceRead:
        """Hyperparameter importance (409 before two trials have completed)."""
        path = f"/v1/sweeps/{self._id(sweep_id)}/importance"
        return self._read(ImportanceRead, "GET", path)

    def comparison(self, sweep_id: str) -> ComparisonRead:
        """Per configuration the mean, std and 95% CI over seeds, and paired tests of the
        best against each other (409 for a sweep with fewer than 2 repeats)."""
        path = f"/v1/sweeps/{self._id(sweep_id)}/comparison"
        return self._read(ComparisonRead, "GET", path)

    def sweep_plot(
        self, sweep_id: str, kind: SweepPlot | str = "history", fmt: str = "png"
    ) -> bytes:
        """A sweep's chart as PNG or SVG bytes: ``history`` (objective by trial, running
        best), ``parallel`` (parallel coordinates), ``intermediate`` (every trial's curve,
        pruned ones marked), ``importance``, or ``comparison`` (mean curves with bands)."""
        try:
            kind = SweepPlot(kind)
        except ValueError:
            choices = ", ".join(SweepPlot)
            raise ValueError(f"sweep plot kind must be one of {choices}, not {kind!r}") from None
        return self._image(f"/v1/sweeps/{self._id(sweep_id)}/plots/{kind}.{self._format(fmt)}")

    def sweep_events(self, sweep_id: str, after: int | None = None) -> Iterator[Event]:
        """The sweep's events as they happen, until ``end``: ``sweep`` (status, counts,
        best), ``trial`` (a trial's job started, was pruned, ended …: ``trial``,
        ``trial_state``, ``job_id``, ``repeat``, ``status``, ``epochs_completed``,
        ``objective``, ``params``) and ``epoch`` (one per epoch of any trial, after event
        number ``after``). Resumed with ``Last-Event-ID`` like :meth:`events`."""
        path = f"/v1/sweeps/{self._id(sweep_id)}/events"
        return self._stream(path, after, f"sweep {sweep_id}")

    def wait_sweep(self, sweep_id: str) -> SweepRead:
        """Block until the sweep ends (following its events); returns the final sweep."""
        for event in self.sweep_events(sweep_id):
            if event.event == "end":
                break
            if event.event == "sweep" and event.data.get("status") in SWEEP_ENDED:
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
                            event = decode_event(raw)
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

    def wait(self, job_id: str) -> JobRead:
        """Block until the job ends (following its events); returns the final job."""
        for event in self.events(job_id):
            if event.event == "end":
                break
            if event.event == "status" and event.data.get("status") in JOB_ENDED:
                break
        return self.job(job_id)
