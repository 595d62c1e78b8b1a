"""Wire helpers shared by the `/v1` and `/_sandbox` routes: errors, strict bodies, pagination.

Errors are raised as `ApiError` and rendered once as
`{"error": {"code", "message"}, "meta": {"requestId"}}`. Request bodies are strict: an unknown
field is a 400 `invalid_request` naming it. List cursors are opaque base64url JSON holding a
fingerprint of the query they were issued for and the sort key of the last item returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

T = TypeVar("T")

REQUEST_ID_KEY = "waycore.request_id"
BODY_KEY = "waycore.body"


class ApiError(Exception):
    """An error answer: HTTP status, snake_case code, human message, optional headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def request_id(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_KEY, ""))


def error_response(
    rid: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}, "meta": {"requestId": rid}}
    return JSONResponse(body, status_code=status, headers=headers)


def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(request_id(request), exc.status, exc.code, exc.message, exc.headers)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


def raw_body(request: Request) -> bytes:
    """The body the middleware already read (endpoints never re-read the stream)."""
    body = request.scope.get(BODY_KEY, b"")
    return body if isinstance(body, bytes) else b""


def read_object(
    request: Request, allowed: Iterable[str], *, optional: bool = False
) -> dict[str, Any]:
    """Parse the JSON object body; reject unknown fields. `optional`: empty body means {}."""
    raw = raw_body(request)
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "invalid_request", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    allowed_set = set(allowed)
    unknown = sorted(k for k in data if k not in allowed_set)
    if unknown:
        raise ApiError(400, "invalid_request", f"Unknown field `{unknown[0]}` in request body.")
    return data


def opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ApiError(400, "invalid_request", f"Field `{name}` must be a string or null.")


def req_str(data: dict[str, Any], name: str) -> str:
    value = opt_str(data, name)
    if value is None or not value.strip():
        raise ApiError(400, "invalid_request", f"Field `{name}` is required.")
    return value


def opt_object(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise ApiError(400, "invalid_request", f"Field `{name}` must be an object or null.")


# -- pagination --------------------------------------------------------------------------------


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return 100
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_limit", "`limit` must be an integer from 1 to 500.") from None
    if not 1 <= limit <= 500:
        raise ApiError(400, "invalid_limit", "`limit` must be an integer from 1 to 500.")
    return limit


def _fingerprint(request: Request) -> str:
    params = sorted(
        (k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "limit")
    )
    raw = json.dumps([request.url.path, params], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _encode_cursor(fingerprint: str, key: Sequence[Any]) -> str:
    raw = json.dumps({"f": fingerprint, "k": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str) -> list[Any]:
    bad = ApiError(400, "invalid_cursor", "The cursor is malformed or belongs to another query.")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad from None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list):
        raise bad
    if data.get("f") != fingerprint:
        raise bad
    key: list[Any] = data["k"]
    return key


def paginate(
    request: Request,
    items: Iterable[T],
    sort_key: Callable[[T], tuple[Any, ...]],
    render: Callable[[T], dict[str, Any]],
) -> Response:
    """Sort `items`, cut the page after the cursor, answer the list envelope."""
    limit = parse_limit(request)
    fingerprint = _fingerprint(request)
    ordered = sorted(items, key=sort_key)
    cursor = request.query_params.get("cursor")
    if cursor:
        after = tuple(_decode_cursor(cursor, fingerprint))
        try:
            ordered = [i for i in ordered if sort_key(i) > after]
        except TypeError:
            raise ApiError(400, "invalid_cursor", "The cursor is malformed.") from None
    page, rest = ordered[:limit], ordered[limit:]
    next_cursor = _encode_cursor(fingerprint, sort_key(page[-1])) if rest and page else None
    body = {
        "data": [render(i) for i in page],
        "pagination": {"hasMore": next_cursor is not None, "nextCursor": next_cursor},
        "meta": {"requestId": request_id(request)},
    }
    return JSONResponse(body)
