"""The exception tree of the Waycore client.

    WaycoreError                      anything that went wrong talking to Waycore
    ├── WaycoreTransportError         no usable HTTP answer
    │   ├── WaycoreTimeout            connect/read/write/pool timeout
    │   └── WaycoreUnavailable        connection refused, reset, DNS, TLS ...
    └── WaycoreAPIError               Waycore answered with an error status
        ├── BadRequest                400 (and 422): invalid request, entity, portal URL, cursor ...
        ├── Unauthorized              401: missing or invalid API key (server configuration)
        ├── Forbidden                 403: the key lacks the endpoint's scope (configuration)
        ├── NotFound                  404: missing, or not visible to this key
        ├── Conflict                  409: state conflict (duplicate, setup-stage or running sync)
        ├── RateLimited               429: rate limit or the sync cooldown; see `retry_after`
        └── ServerError               5xx

Every `WaycoreAPIError` carries the HTTP `status`, Waycore's `code` and `message` when its body
had them, `retry_after` in seconds (from `Retry-After`), the `request_id` (for support
references) and the raw body (`raw_body`, for developer logs only). No exception ever holds the
API key or request headers; `str()` shows only method, path, status, code and request id.
"""

from __future__ import annotations


class WaycoreError(Exception):
    """Base class: anything that went wrong talking to Waycore."""

    #: A safe summary for logs: never the key, never a request body.
    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class WaycoreTransportError(WaycoreError):
    """No usable HTTP answer (network failure or timeout)."""


class WaycoreTimeout(WaycoreTransportError):
    """Waycore did not answer within the configured timeout."""


class WaycoreUnavailable(WaycoreTransportError):
    """Waycore could not be reached (refused, reset, DNS or TLS failure)."""


class WaycoreAPIError(WaycoreError):
    """Waycore answered with an error status."""

    def __init__(
        self,
        *,
        status: int,
        method: str,
        path: str,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        raw_body: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.request_id = request_id
        self.raw_body = raw_body
        summary = f"{method} {path} -> {status}"
        if code:
            summary += f" {code}"
        if request_id:
            summary += f" (request {request_id})"
        super().__init__(summary, method=method, path=path)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"path={self.path!r}, request_id={self.request_id!r})"
        )


class BadRequest(WaycoreAPIError):
    """400 (or 422): the request, entity, institution, portal URL, cursor or payload is invalid."""


class Unauthorized(WaycoreAPIError):
    """401: the API key is missing or invalid. A server configuration problem."""


class Forbidden(WaycoreAPIError):
    """403: the API key lacks the scope this endpoint needs. A server configuration problem."""


class NotFound(WaycoreAPIError):
    """404: the resource does not exist or is not visible to this API key."""


class Conflict(WaycoreAPIError):
    """409: state conflict (duplicate, setup-stage sync, sync already running ...)."""


class RateLimited(WaycoreAPIError):
    """429: rate limited, or the connection is in its sync cooldown. See `retry_after`."""


class ServerError(WaycoreAPIError):
    """5xx: Waycore failed."""


_BY_STATUS: dict[int, type[WaycoreAPIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: BadRequest,
    429: RateLimited,
}


def error_class_for(status: int) -> type[WaycoreAPIError]:
    """The exception class for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, WaycoreAPIError)
