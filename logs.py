"""Request ids on every log line, and the process's logging setup.

`RequestIdMiddleware` gives each HTTP request an id: the `X-Request-ID` a trusted proxy sent
(when it looks like an id: 8-64 of `A-Z a-z 0-9 . _ : -`), else a new `rid_<hex>`. The id is
kept in a context variable for the whole request (views, the service layer, the Waycore client
and uvicorn's access line all run inside it), is answered as `X-Request-ID`, and is the support
reference a page shows when Waycore gave no request id of its own. `RequestIdFilter` puts it on
every log record as `request_id` ("-" outside a request), and `configure_logging()` installs it
with a format that prints it.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import logging.config
import logging.handlers
import queue
import re
import secrets
import sys
import threading
import time
from contextvars import ContextVar
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
#: What an inbound `X-Request-ID` must look like to be kept (anything else is replaced).
_INBOUND = re.compile(r"[A-Za-z0-9._:-]{8,64}")
#: The current request's id; "" outside a request.
_REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


#: Request ids: a random prefix per process and a counter (unique, and cheap on every request).
_ID_PREFIX = secrets.token_hex(5)
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"rid_{_ID_PREFIX}{next(_ids):010x}"


def current_request_id() -> str:
    """The id of the request being handled ("" outside a request)."""
    return _REQUEST_ID.get()


def bind_request_id(value: str) -> None:
    """Make `value` the current request id (the middleware does this; tests and commands may
    too)."""
    _REQUEST_ID.set(value)


class RequestIdMiddleware:
    """Give every HTTP request an id, for its log lines and its `X-Request-ID` answer.

    The id is not reset when the request ends: each request runs in its own task (its own
    context), and the app's last-resort error handler runs outside this middleware but still
    needs the id for the reference it shows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = _inbound_id(scope)
        request_id = inbound if _INBOUND.fullmatch(inbound) else new_request_id()
        answer = (_HEADER_RAW, request_id.encode())
        bind_request_id(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_RAW]
                headers.append(answer)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access.isEnabledFor(logging.INFO):
                elapsed = (time.perf_counter() - started) * 1000
                client, method, path = _client(scope), scope["method"], _loggable_path(scope)
                handler = only_handler(access)
                if handler is not None:  # the same line, without a record on the way
                    message = f'{client} "{method} {path}" {status} {elapsed:.1f} ms'
                    handler.put_line(access.name, _INFO, request_id, message)
                else:  # a host's or a test's handler: the record, its fields apart
                    access.info(ACCESS_FORMAT, client, method, path, status, elapsed)


_HEADER_RAW = HEADER.lower().encode()
#: The access line's message: client, method, path (a sign-in token redacted), status, ms.
ACCESS_FORMAT = '%s "%s %s" %d %.1f ms'
_INFO = logging.getLevelName(logging.INFO)


def _inbound_id(scope: Scope) -> str:
    """The `X-Request-ID` the request came with ("" when none)."""
    for name, value in scope["headers"]:
        if name == _HEADER_RAW:
            return str(value.decode("latin-1"))
    return ""


#: The one line per request (uvicorn's own access line is off: this one carries the request id
#: and never a sign-in token).
access = logging.getLogger("app.access")
#: Query parameters whose values never reach a log line.
_SECRET_PARAMS = frozenset({"token"})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _loggable_path(scope: Scope) -> str:
    """The request's path, its query with any sign-in token replaced."""
    path = str(scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    if not query:
        return path
    if "token=" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "[redacted]" if k in _SECRET_PARAMS else v) for k, v in pairs])
    return f"{path}?{query}"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record passing through a handler ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def only_handler(logger: logging.Logger) -> BackgroundStderrHandler | None:
    """The app's stderr handler, when it is the one handler an INFO line of `logger` reaches
    and no filter but the request-id one sees it on the way (as `LOG_CONFIG` sets it up): the
    line can then go to it as text, with no `LogRecord` made for it. None otherwise (a host's
    logging, a test's handler), and the line goes through `logging` as usual."""
    found: BackgroundStderrHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not BackgroundStderrHandler
                or handler.level > logging.INFO
                or any(type(f) is not RequestIdFilter for f in handler.filters)
            ):
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


class BackgroundStderrHandler(logging.handlers.QueueHandler):
    """Lines to stderr, written on a thread of their own, so a slow stderr never holds up a
    request: a request formats its line (with its request id, taken here, in the request's
    context) and adds it to a queue. The thread wakes when a line arrives, lets more gather for
    a few milliseconds, and writes them all at once: it needs the interpreter only briefly, and
    a busy process makes few system calls."""

    def __init__(self) -> None:
        lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        super().__init__(lines)
        self._lines = lines
        self._formatter = LineFormatter(LOG_FORMAT)
        self._format = self._formatter.format
        self._writer = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self._writer.start()
        atexit.register(self.stop)  # every queued line is written before exit

    def prepare(self, record: logging.LogRecord) -> str:
        try:
            return self._format(record) + "\n"
        except Exception:
            return f"(unformattable log record from {record.name})\n"

    def put_line(self, name: str, level: str, request_id: str, message: str) -> None:
        """Queue the line a record of logger `name` at `level` with this message would print
        now (`LOG_FORMAT`), without making the record (`only_handler` says when that is the
        same thing)."""
        stamp = self._formatter.stamp(time.time())
        self._lines.put(f"{stamp} {level} {name} [{request_id or '-'}] {message}\n")

    def stop(self) -> None:
        """Write what is queued, then end the thread (at exit)."""
        if self._writer.is_alive():
            self._lines.put(None)
            self._writer.join()

    def _write(self) -> None:
        while True:
            batch = [self._lines.get()]
            # Let the lines of the next few milliseconds gather: one wake-up of this thread (and
            # one write) per interval, not one per line taking the interpreter from the requests.
            time.sleep(GATHER_SECONDS)
            while len(batch) < MAX_LINES_PER_WRITE:
                try:
                    batch.append(self._lines.get_nowait())
                except queue.Empty:
                    break
            text = "".join(line for line in batch if line is not None)
            if text:
                try:
                    sys.stderr.write(text)
                    sys.stderr.flush()
                except Exception:  # a closed or broken stderr: nothing sensible to do
                    pass
            if None in batch:
                return


#: The most lines the log thread writes at once.
MAX_LINES_PER_WRITE = 1024
#: How long the log thread lets lines gather after the first one before writing them: a line
#: reaches stderr at most this much later.
GATHER_SECONDS = 0.02


class LineFormatter(logging.Formatter):
    """`logging.Formatter` with the date and time formatted once per second (the same text as
    the default `%(asctime)s`: `2026-01-31 12:00:00,123`)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        #: The last second formatted and its text, as one value (two threads may format).
        self._last: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.stamp(record.created, record.msecs)

    def stamp(self, created: float, msecs: float | None = None) -> str:
        """`%(asctime)s` of a record made at `created` (its `msecs` when there is a record)."""
        second = int(created)
        last_second, stamp = self._last
        if second != last_second:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
            self._last = (second, stamp)
        if msecs is None:
            msecs = (created - second) * 1000
        return f"{stamp},{int(msecs):03d}"


def lean_records() -> None:
    """Records without what no line of this app prints: the calling file and line (which costs a
    walk of the stack on every call), the thread and the process. Applied by
    `python server.py` only: a host that mounts the kit keeps its own logging as it is."""
    logging._srcfile = None  # the documented switch (Logging HOWTO, "Optimization")
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


#: The process's logging: stderr, each line with its request id; uvicorn's loggers go through
#: the same handler. `python server.py` hands it to uvicorn, which applies it at start.
LOG_CONFIG: dict[str, object] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "logs.RequestIdFilter"}},
    "formatters": {"default": {"format": LOG_FORMAT}},
    "handlers": {"stderr": {"()": "logs.BackgroundStderrHandler", "filters": ["request_id"]}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        **{
            name: {"level": "INFO", "handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error")
        },
        # Replaced by this app's own line per request (`app.access`).
        "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        # One line per request: httpx's own line per Waycore call is noise (the Waycore client
        # logs each call at DEBUG).
        "httpx": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}


def configure_logging() -> logging.Handler:
    """Apply `LOG_CONFIG` (outside uvicorn: commands, tests); returns the stderr handler."""
    logging.config.dictConfig(LOG_CONFIG)
    handler = logging.getLogger().handlers[0]
    return handler
