"""The typed async client for Waycore's `/v1` API: the only code that talks to Waycore.

One `WaycoreClient` per app wraps one `httpx.AsyncClient` (base URL, `Authorization: Bearer`,
explicit timeouts). Every method returns dataclasses from `waycore.models` or raises an exception
from `waycore.errors`. Rules it keeps for the whole app:

- only `/v1/...` paths are ever requested (`_request` refuses anything else);
- list calls follow `data` and `pagination.nextCursor`;
- reads (and the one write the contract makes safe to repeat: create-or-return connection) are
  retried on connection errors, timeouts, 5xx and short 429s, with capped exponential backoff and
  full jitter, honouring `Retry-After`; other writes (credentials, which may carry the bank
  password, included) are retried only when the request provably never left (connect failure);
- the API key is held by the underlying httpx client's default headers and never appears in a
  repr, an exception, or a log line; request bodies are never logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx

from caching import TTLCache
from waycore.errors import (
    BadRequest,
    WaycoreAPIError,
    WaycoreError,
    WaycoreTimeout,
    WaycoreUnavailable,
    error_class_for,
)
from waycore.models import (
    Account,
    Balance,
    Connection,
    ConnectionResult,
    Entity,
    Institution,
    Page,
    Transaction,
    Webhook,
)

log = logging.getLogger("waycore.client")

T = TypeVar("T")
Params = Mapping[str, str | int | None]

#: The versioned prefix every call uses; the client refuses any other path.
API_PREFIX = "/v1/"
#: Header names Waycore (or a proxy in front of it) may use for the request id.
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "waycore-request-id")


def _retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone also accepts "²"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _error_from_response(response: httpx.Response, method: str, path: str) -> WaycoreAPIError:
    raw = response.text
    code = message = request_id = None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
        elif isinstance(error, str):
            code = error
            message = body.get("message") if isinstance(body.get("message"), str) else None
        meta = body.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("requestId"), str):
            request_id = meta["requestId"]
    if request_id is None:
        request_id = next(
            (response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None
        )
    cls = error_class_for(response.status_code)
    return cls(
        status=response.status_code,
        method=method,
        path=path,
        code=str(code) if code is not None else None,
        message=str(message) if message is not None else None,
        retry_after=_retry_after_seconds(response.headers.get("retry-after")),
        request_id=request_id,
        raw_body=raw,
    )


def _json(response: httpx.Response, method: str, path: str) -> Any:
    """The JSON body of a success response; `WaycoreError` if it is not JSON (e.g. a proxy page)."""
    try:
        return response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise WaycoreError(
            f"{method} {path} -> {response.status_code}: response body is not JSON",
            method=method,
            path=path,
        ) from None


def _parse(parse: Callable[[dict[str, Any]], T], data: Any, method: str, path: str) -> T:
    """`parse(data)`, turning a body that lacks the resource's fields into a `WaycoreError`."""
    if isinstance(data, dict):
        try:
            return parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"{type(exc).__name__} {exc}"
    else:
        problem = f"a JSON {type(data).__name__}, not an object"
    raise WaycoreError(
        f"{method} {path}: unexpected response body ({problem})", method=method, path=path
    )


def _check_path(path: str) -> None:
    """Only a plain `/v1/...` path: no dot segments (httpx would resolve `/v1/../x` to `/x`),
    no empty segments, no query or fragment (those travel as `params`), no backslash."""
    segments = path.split("/")[2:]
    if (
        not path.startswith(API_PREFIX)
        or any(c in path for c in "?#\\")
        or any(seg in {"", ".", ".."} for seg in segments)
    ):
        raise ValueError(f"refusing a non-/v1 Waycore path: {path!r}")


class WaycoreClient:
    """Async client for Waycore `/v1`. Build with `WaycoreClient.create(...)` or wrap a client.

    `retries` is the number of extra attempts for a retryable call; backoff is
    `min(backoff_cap, backoff_base * 2**attempt)` with full jitter, or `Retry-After` when Waycore
    sends one (a `Retry-After` longer than `max_retry_after` is not waited for: the error is
    raised so the caller can tell the user when to come back).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        retries: int = 2,
        backoff_base: float = 0.2,
        backoff_cap: float = 2.0,
        max_retry_after: float = 5.0,
        institution_ttl: float = 300.0,
        search_ttl: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        #: Catalog records change rarely; the wizard reads the chosen one on every step.
        self._institutions: TTLCache[str, Institution] = TTLCache(
            institution_ttl, limit=512, clock=clock
        )
        #: Search-as-you-type asks the same few queries again and again (every keystroke, every
        #: customer): answers are remembered briefly (the catalog is Waycore's, never written
        #: by this app), and customers typing the same query at once share one call.
        self._searches: TTLCache[tuple[str, int], tuple[Institution, ...]] = TTLCache(
            search_ttl, limit=2048, clock=clock
        )

    @classmethod
    def create(
        cls,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> WaycoreClient:
        """A client with its own `httpx.AsyncClient`; `base_url` may or may not end in `/v1`."""
        base = base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        http = httpx.AsyncClient(
            base_url=base,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "waycore-onboarding/0.1",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            follow_redirects=False,
        )
        return cls(http, **options)

    def __repr__(self) -> str:
        return f"WaycoreClient(base_url={str(self._http.base_url)!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> WaycoreClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transport

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Mapping[str, Any] | None = None,
        retry_safe: bool,
        expect: tuple[int, ...] = (200,),
        retries: int | None = None,
    ) -> httpx.Response:
        """Send one call, retrying as the docstring of the module says (at most `retries` extra
        attempts, default the client's); raise on error status."""
        _check_path(path)
        retries = self.retries if retries is None else retries
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=query or None,
                    json=dict(json_body) if json_body is not None else None,
                )
            except httpx.TimeoutException as exc:
                # A connect timeout never reached Waycore; a read timeout may have.
                safe = retry_safe or isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                if safe and attempt < retries:
                    await self._sleep(self._backoff(attempt, None))
                    attempt += 1
                    continue
                log.warning(
                    "waycore %s %s timed out after %d attempt(s)", method, path, attempt + 1
                )
                raise WaycoreTimeout(
                    f"{method} {path} timed out", method=method, path=path
                ) from None
            except httpx.RequestError as exc:  # transport errors, plus e.g. DecodingError
                safe = retry_safe or isinstance(exc, httpx.ConnectError)
                if safe and attempt < retries:
                    await self._sleep(self._backoff(attempt, None))
                    attempt += 1
                    continue
                log.warning("waycore %s %s unreachable: %s", method, path, type(exc).__name__)
                raise WaycoreUnavailable(
                    f"{method} {path} could not reach Waycore ({type(exc).__name__})",
                    method=method,
                    path=path,
                ) from None
            elapsed_ms = (time.monotonic() - started) * 1000
            log.debug(
                "waycore %s %s -> %d in %.0f ms",
                method,
                path,
                response.status_code,
                elapsed_ms,
            )
            if response.status_code in expect:
                return response
            error = _error_from_response(response, method, path)
            retryable = (
                retry_safe
                and (error.status >= 500 or error.status == 429)
                and (error.retry_after or 0) <= self.max_retry_after
            )
            if retryable and attempt < retries:
                await self._sleep(self._backoff(attempt, error.retry_after))
                attempt += 1
                continue
            if 200 <= response.status_code < 300:
                return response  # a 2xx we did not predict is still a success
            raise error

    async def _get(
        self, path: str, params: Params | None = None, *, retries: int | None = None
    ) -> Any:
        response = await self._request("GET", path, params=params, retry_safe=True, retries=retries)
        return _json(response, "GET", path)

    async def _get_one(
        self, path: str, parse: Callable[[dict[str, Any]], T], *, retries: int | None = None
    ) -> T:
        return _parse(parse, await self._get(path, retries=retries), "GET", path)

    async def _pages(
        self, path: str, params: Params | None, parse: Callable[[dict[str, Any]], T]
    ) -> AsyncIterator[Page[T]]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await self._page(path, {**(params or {}), "cursor": cursor}, parse)
            yield page
            if not page.has_more or not page.next_cursor:
                return
            if page.next_cursor in seen:  # a server handing back an old cursor would loop forever
                raise WaycoreError(
                    f"GET {path}: pagination cursor repeated", method="GET", path=path
                )
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    async def _page(
        self, path: str, params: Params, parse: Callable[[dict[str, Any]], T]
    ) -> Page[T]:
        body = await self._get(path, params)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise WaycoreError(f"GET {path}: list response without data", method="GET", path=path)
        pagination = body.get("pagination")
        pagination = pagination if isinstance(pagination, dict) else {}
        next_cursor = pagination.get("nextCursor")
        meta = body.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        return Page(
            items=[_parse(parse, item, "GET", path) for item in body["data"]],
            next_cursor=str(next_cursor) if next_cursor else None,
            has_more=bool(pagination.get("hasMore", bool(next_cursor))),
            request_id=meta.get("requestId"),
        )

    async def _all(
        self, path: str, params: Params | None, parse: Callable[[dict[str, Any]], T]
    ) -> list[T]:
        items: list[T] = []
        async for page in self._pages(path, params, parse):
            items.extend(page.items)
        return items

    # ------------------------------------------------------------------ entities

    async def list_entities(self, external_entity_id: str | None = None) -> list[Entity]:
        """`GET /v1/entities`, every page, optionally filtered by `externalEntityId`."""
        return await self._all(
            "/v1/entities", {"externalEntityId": external_entity_id}, Entity.from_api
        )

    async def get_entity(self, entity_id: str) -> Entity:
        return await self._get_one(f"/v1/entities/{_seg(entity_id)}", Entity.from_api)

    async def create_entity(
        self,
        external_entity_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Entity:
        """`POST /v1/entities`. Not retried: a duplicate answers 409 (`Conflict`)."""
        body: dict[str, Any] = {"externalEntityId": external_entity_id}
        if name is not None:
            body["name"] = name
        if metadata is not None:
            body["metadata"] = dict(metadata)
        path = "/v1/entities"
        response = await self._request(
            "POST", path, json_body=body, retry_safe=False, expect=(200, 201)
        )
        return _parse(Entity.from_api, _json(response, "POST", path), "POST", path)

    # ------------------------------------------------------------------ institutions

    @property
    def institution_ttl(self) -> float:
        """Seconds a catalog record is remembered."""
        return self._institutions.ttl

    @property
    def search_ttl(self) -> float:
        """Seconds a search's answer is remembered."""
        return self._searches.ttl

    def forget_cached(self) -> None:
        """Drop the remembered catalog records and searches (the next calls ask Waycore)."""
        self._institutions.clear()
        self._searches.clear()

    async def search_institutions(self, query: str, *, limit: int = 20) -> list[Institution]:
        """`GET /v1/institutions?query=`: the first `limit` matches (one page), remembered for
        `search_ttl` seconds (0: never); the same search asked again meanwhile waits for it."""

        async def search() -> tuple[Institution, ...]:
            page = await self._page(
                "/v1/institutions", {"query": query, "limit": limit}, Institution.from_api
            )
            return tuple(page.items)

        key = (query.strip().casefold(), limit)
        return list(await self._searches.get_or_load(key, search))

    async def get_institution(self, institution_id: str) -> Institution:
        """`GET /v1/institutions/{id}`, remembered for `institution_ttl` seconds (0: never);
        the same record asked again meanwhile waits for it."""
        path = f"/v1/institutions/{_seg(institution_id)}"
        return await self._institutions.get_or_load(
            institution_id, lambda: self._get_one(path, Institution.from_api)
        )

    # ------------------------------------------------------------------ connections

    async def create_connection(
        self,
        entity_id: str,
        *,
        institution_id: str | None = None,
        portal_url: str | None = None,
    ) -> ConnectionResult:
        """`POST /v1/connections` (create or return): 201 a new connection, 200 an existing one.

        Only `entityId`, `institutionId` and `portalUrl` are ever sent; `portal_url` goes exactly
        as given. Retried like a read, because create-or-return makes a repeat harmless.
        """
        if not institution_id and not portal_url:
            raise ValueError("a connection needs an institution_id or a portal_url")
        body: dict[str, Any] = {"entityId": entity_id}
        if institution_id:
            body["institutionId"] = institution_id
        if portal_url:
            body["portalUrl"] = portal_url
        path = "/v1/connections"
        response = await self._request(
            "POST", path, json_body=body, retry_safe=True, expect=(200, 201)
        )
        return ConnectionResult(
            connection=_parse(Connection.from_api, _json(response, "POST", path), "POST", path),
            created=response.status_code == 201,
        )

    async def get_connection(self, connection_id: str, *, retries: int | None = None) -> Connection:
        """`GET /v1/connections/{id}`. A status check that is itself repeated on a schedule passes
        `retries=0`: its next check is the retry, and a `Retry-After` is honoured by scheduling
        it, not by waiting here."""
        path = f"/v1/connections/{_seg(connection_id)}"
        return await self._get_one(path, Connection.from_api, retries=retries)

    async def list_connections(
        self,
        *,
        entity_id: str | None = None,
        status: str | None = None,
        institution_id: str | None = None,
    ) -> list[Connection]:
        """`GET /v1/connections`, every page."""
        params = {"entityId": entity_id, "status": status, "institutionId": institution_id}
        return await self._all("/v1/connections", params, Connection.from_api)

    async def delete_connection(self, connection_id: str) -> None:
        """`DELETE /v1/connections/{id}`: hard delete with accounts and transactions. Never retried
        after the request may have arrived; callers must have the user's explicit confirmation."""
        await self._request(
            "DELETE",
            f"/v1/connections/{_seg(connection_id)}",
            retry_safe=False,
            expect=(200, 202, 204),
        )

    async def update_credentials(
        self,
        connection_id: str,
        *,
        bank_username: str | None = None,
        bank_customer_id: str | None = None,
        password: str | None = None,
    ) -> Connection:
        """`PUT /v1/connections/{id}/credentials` with only the populated fields.

        Raises `ValueError` when every field is blank: the guide says to skip the call then.
        Sent at most once (it may carry the bank password): retried only when the request
        provably never left; otherwise the caller asks the user again.
        """
        fields = {
            "bankUsername": bank_username,
            "bankCustomerId": bank_customer_id,
            "password": password,
        }
        body = {k: v for k, v in fields.items() if v is not None and v.strip()}
        if not body:
            raise ValueError("no credential field is populated; skip the call")
        path = f"/v1/connections/{_seg(connection_id)}/credentials"
        response = await self._request("PUT", path, json_body=body, retry_safe=False)
        return _parse(Connection.from_api, _json(response, "PUT", path), "PUT", path)

    async def complete_setup(self, connection_id: str) -> Connection:
        """`PUT /v1/connections/{id}/setupCompletion`: the delegated user is active."""
        path = f"/v1/connections/{_seg(connection_id)}/setupCompletion"
        response = await self._request("PUT", path, json_body={}, retry_safe=False)
        return _parse(Connection.from_api, _json(response, "PUT", path), "PUT", path)

    async def sync_connection(self, connection_id: str) -> Connection | None:
        """`PUT /v1/connections/{id}/sync`: 202 when queued. 409 (`Conflict`) in setup or while
        syncing; 429 (`RateLimited`, see `retry_after`) during the cooldown. Never retried."""
        response = await self._request(
            "PUT",
            f"/v1/connections/{_seg(connection_id)}/sync",
            retry_safe=False,
            expect=(200, 202),
        )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return Connection.from_api(body) if isinstance(body, dict) and "id" in body else None

    # ------------------------------------------------------------------ data

    async def list_accounts(self, connection_id: str) -> list[Account]:
        return await self._all("/v1/accounts", {"connectionId": connection_id}, Account.from_api)

    async def list_balances(
        self,
        *,
        connection_id: str | None = None,
        account_id: str | None = None,
        date_gte: str | None = None,
        date_lt: str | None = None,
    ) -> list[Balance]:
        """`GET /v1/balances` (daily balances), every page, newest date first."""
        params = {
            "connectionId": connection_id,
            "accountId": account_id,
            "dateGte": date_gte,
            "dateLt": date_lt,
        }
        return await self._all("/v1/balances", params, Balance.from_api)

    async def transactions_page(
        self,
        *,
        connection_id: str | None = None,
        account_id: str | None = None,
        cursor: str | None = None,
        limit: int = 25,
    ) -> Page[Transaction]:
        """One page of `GET /v1/transactions`; pass `next_cursor` back for the next one."""
        params = {
            "connectionId": connection_id,
            "accountId": account_id,
            "cursor": cursor,
            "limit": limit,
        }
        return await self._page("/v1/transactions", params, Transaction.from_api)

    async def list_transactions(
        self, *, connection_id: str | None = None, account_id: str | None = None
    ) -> list[Transaction]:
        params = {"connectionId": connection_id, "accountId": account_id}
        return await self._all("/v1/transactions", params, Transaction.from_api)

    # ------------------------------------------------------------------ webhooks

    async def create_webhook(self, url: str, events: list[str]) -> Webhook:
        """`POST /v1/webhooks`; the answer holds the full signing secret, this once."""
        response = await self._request(
            "POST",
            "/v1/webhooks",
            json_body={"url": url, "events": list(events)},
            retry_safe=False,
            expect=(200, 201),
        )
        body = _json(response, "POST", "/v1/webhooks")
        if isinstance(body, dict) and isinstance(body.get("webhook"), dict):
            body = body["webhook"]
        return _parse(Webhook.from_api, body, "POST", "/v1/webhooks")

    async def list_webhooks(self) -> list[Webhook]:
        return await self._all("/v1/webhooks", None, Webhook.from_api)

    async def test_webhook(self, webhook_id: str) -> str | None:
        """`POST /v1/webhooks/{id}/test`: Waycore queues a `test` event to the registration
        (it must be active and subscribed to `test`); returns the event id when it says one."""
        path = f"/v1/webhooks/{_seg(webhook_id)}/test"
        response = await self._request("POST", path, retry_safe=False, expect=(200, 201, 202))
        body = _json(response, "POST", path) if response.content else None
        event_id = body.get("eventId") if isinstance(body, dict) else None
        return str(event_id) if event_id else None

    async def check_access(self, method: Literal["GET", "POST"], path: str) -> None:
        """One request that shows whether the key may use `path`, changing nothing: a GET of one
        item, or a POST with an empty body, which a key that has the scope gets refused as
        invalid (400/422) before anything is created. Returns when access is granted; raises
        `Unauthorized`, `Forbidden` (403: the scope is missing) or any other `WaycoreError`."""
        try:
            await self._request(
                method,
                path,
                params={"limit": 1} if method == "GET" else None,
                json_body={} if method == "POST" else None,
                retry_safe=method == "GET",
                expect=(200,),
            )
        except BadRequest:
            if method != "POST":
                raise

    async def delete_webhook(self, webhook_id: str) -> None:
        """`DELETE /v1/webhooks/{id}`: stop deliveries to a registration."""
        await self._request(
            "DELETE",
            f"/v1/webhooks/{_seg(webhook_id)}",
            retry_safe=False,
            expect=(200, 202, 204),
        )


def _seg(value: str) -> str:
    """One path segment: ids never carry `/`, `?`, `#`, `%`, a backslash, whitespace, control or
    non-ASCII characters, so a crafted id cannot leave `/v1` or break the request line."""
    if (
        not value
        or not value.isascii()
        or not value.isprintable()
        or any(c in value for c in "/?#%\\ ")
        or value in {".", ".."}
    ):
        raise ValueError(f"invalid Waycore id: {value!r}")
    return value
