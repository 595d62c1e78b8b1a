"""Every value a request carries, read in one place and held to the same rules.

- Form bodies and query strings are decoded here, strictly. Starlette's own parsing replaces
  invalid UTF-8 with U+FFFD (and reads raw bytes as Latin-1) without a word; here a field that
  is not valid UTF-8 is refused with a message instead, so nothing garbled is stored or sent on.
- Text fields refuse control characters: C0 (NUL, TAB, CR, LF, ...), DEL and C1, and the Unicode
  line and paragraph separators. No field of this app takes more than one line.
- Ids (drafts, connections, institutions) must have the shape of an id before they reach the
  store or any URL: a path segment Waycore could hold, nothing else. An id of another shape is
  refused like an unknown one.

Views read `await form(request)` or `query(request)` and ask the `Fields` for each value; a
refused text field leaves a message in `Fields.errors` under its own name, for the form to show.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.requests import Request

#: C0 controls, DEL, C1 controls, and U+2028/U+2029 (line and paragraph separators).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A draft, connection or institution id: one path segment of letters, digits, `_ . : -`.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
#: An opaque pagination cursor from Waycore (base64 or URL-safe base64, with separators).
CURSOR_PATTERN = re.compile(r"[A-Za-z0-9_.~+/=:-]{1,2048}")
#: The largest form body the app reads (its forms are a few short fields).
MAX_FORM_BYTES = 64 * 1024

NOT_UTF8 = "This contains characters that could not be read. Type it again."
CONTROL = (
    "This contains a character that cannot be used here, such as a line break or a tab. "
    "Remove it and try again."
)
FORM_TYPES = frozenset({"", "application/x-www-form-urlencoded"})


def control_character_in(value: str) -> bool:
    """Whether `value` holds a character no single-line field accepts."""
    return CONTROL_CHARACTERS.search(value) is not None


def is_id(value: str) -> bool:
    """Whether `value` has the shape of an id (see the module doc)."""
    return ID_PATTERN.fullmatch(value) is not None


def is_cursor(value: str) -> bool:
    return CURSOR_PATTERN.fullmatch(value) is not None


def _decode(raw: bytes) -> str | None:
    """One percent-encoded name or value; None when it is not valid UTF-8."""
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


class Fields:
    """The fields of one form body or query string, each value decoded strictly (None: it was
    not valid UTF-8). Text read through `text()` leaves its refusals in `errors`."""

    def __init__(self, pairs: list[tuple[str, str | None]]) -> None:
        self._values: dict[str, str | None] = {}
        for name, value in pairs:
            self._values.setdefault(name, value)  # the first value of a repeated name
        self.errors: dict[str, str] = {}

    @classmethod
    def parse(cls, raw: bytes) -> Fields:
        """`a=1&b=%C3%A9` as sent by a browser (a query string or a urlencoded body)."""
        pairs: list[tuple[str, str | None]] = []
        for part in raw.split(b"&"):
            if not part:
                continue
            raw_name, _, raw_value = part.partition(b"=")
            name = _decode(raw_name)
            if name is not None:
                pairs.append((name, _decode(raw_value)))
        return cls(pairs)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def raw(self, name: str) -> str:
        """The value as sent, for fields that are compared, never stored or forwarded ("" when
        absent or unreadable)."""
        return self._values.get(name) or ""

    def text(self, name: str, limit: int, *, strip: bool = True) -> str:
        """A single-line text field, trimmed (unless `strip` is False) and capped at `limit`
        characters. "" when absent; "" with a message in `errors[name]` when it is not valid
        UTF-8 or holds a control character."""
        if name not in self._values:
            return ""
        value = self._values[name]
        if value is None:
            self.errors[name] = NOT_UTF8
            return ""
        if control_character_in(value):
            self.errors[name] = CONTROL
            return ""
        return (value.strip() if strip else value)[:limit]

    def id(self, name: str) -> str | None:
        """An id field: "" when absent or blank, None when it cannot be an id."""
        value = self._values.get(name, "")
        if value is None:
            return None
        value = value.strip()
        if not value:
            return ""
        return value if is_id(value) else None


async def form(request: Request) -> Fields:
    """The request's urlencoded form body, decoded strictly. Another content type (this app's
    forms send none other) answers 415; a body over `MAX_FORM_BYTES` answers 413."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FORM_TYPES:
        raise HTTPException(415, "This form was sent in a format the app does not accept.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(413, "This form is too large.")
    body = await bounded_body(request, MAX_FORM_BYTES)
    if body is None:
        raise HTTPException(413, "This form is too large.")
    return Fields.parse(body)


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it is longer than `limit` bytes (the rest is
    not read)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def query(request: Request) -> Fields:
    """The request's query string, decoded strictly."""
    raw: bytes = request.scope.get("query_string", b"")
    return Fields.parse(raw)
