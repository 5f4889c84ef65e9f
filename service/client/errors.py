"""What the client raises: every failure is a :class:`DescentError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    import httpx

__all__ = ["ApiError", "ConfigError", "DescentError", "FieldProblem", "Unreachable"]


class DescentError(Exception):
    """Anything that kept a request from getting an answer it could use."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # ``message`` may be reworded after the fact (a 401 says how to get a token).
        return self.message


class ConfigError(DescentError):
    """A config file that is missing (when named explicitly), not TOML, or malformed."""


class Unreachable(DescentError):
    """The server could not be reached, or stopped answering."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class FieldProblem(TypedDict):
    """One entry of an error body's ``fields``: the dotted path of the field, what is
    wrong with it, and (for a choice) the values it allows."""

    field: str
    message: str
    allowed: NotRequired[list[Any]]


class ApiError(DescentError):
    """An error answer from the API: ``{"error": {"status", "code", "message", "fields"}}``.

    ``fields`` lists the named fields at fault (empty when the problem is not with named
    fields). A body that is not the API's (a proxy's HTML page) still gives the status,
    code ``http_error`` and the start of the body as the message. An answer that is not
    what this client's models expect (a server of another version) is code
    ``bad_response``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.fields: list[FieldProblem] = fields or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
            err = body["error"]
            return cls(
                int(err.get("status", response.status_code)),
                str(err.get("code", "http_error")),
                str(err.get("message", "")) or response.reason_phrase,
                [_problem(f) for f in err.get("fields") or [] if isinstance(f, dict)],
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            text = response.text.strip()
            detail = f": {text[:200]}" if text else ""
            message = f"HTTP {response.status_code} {response.reason_phrase}{detail}"
            return cls(response.status_code, "http_error", message)


def _problem(raw: dict[str, Any]) -> FieldProblem:
    problem = FieldProblem(field=str(raw.get("field", "?")), message=str(raw.get("message", "")))
    if isinstance(raw.get("allowed"), list):
        problem["allowed"] = raw["allowed"]
    return problem
