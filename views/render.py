"""The one render helper, and the Jinja environment every template gets.

`render()` returns the whole page unless the request is an htmx request (and not a history
restore); then it renders a single named block of the same template: the block given, else
`content` (the inside of `<main id="main">`, preceded by a `<title>` so htmx updates the tab
title, and by the flash message). A template whose name starts with `_` is a response-only
fragment and is always rendered whole. Every response says
`Vary: HX-Request, HX-History-Restore-Request` and `Cache-Control: no-store` (these pages show
bank details; no shared cache or history cache may keep them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from caching import MISSING, TTLCache
from config import DEFAULT_SETUP_GUIDE_URL, TERMS_OF_USE_URL, Settings
from host import SESSION_ID_KEY, HostUser, Tenant
from security import csrf_token
from views import htmx
from views.filters import FILTERS
from views.status import bank_name, repair_label, screen_copy, status_view, sync_label
from views.support import support_reference
from views.urls import step_url, url_for
from waycore.models import Connection

#: Session key of the one-time message shown at the top of the next page.
FLASH_KEY = "flash"


def flash(request: Request, message: str) -> None:
    """Show `message` once, at the top of the next page."""
    request.session[FLASH_KEY] = message


def _templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def _context(request: Request, context: Mapping[str, Any] | None, *, page: bool) -> dict[str, Any]:
    ctx = dict(context or {})
    if page and "session" in request.scope:
        ctx.setdefault("flash", request.session.pop(FLASH_KEY, None))
    return ctx


def render_block(
    request: Request, name: str, block: str, context: Mapping[str, Any], *, shared: bool = False
) -> str:
    """Render one block of template `name` with the same context a full page would get;
    `shared` (a rendering reused for other viewers): with nothing of this viewer in it."""
    templates = _templates(request)
    ctx: dict[str, Any] = {"request": request}
    for processor in templates.context_processors:
        ctx.update(processor(request))
    if shared:
        ctx.update(_viewer_less(ctx.get("user")))
    ctx.update(context)
    template = templates.get_template(name)
    block_render = template.blocks.get(block)
    if block_render is None:
        raise LookupError(f"template {name!r} has no block {block!r}")
    html = "".join(block_render(template.new_context(ctx)))
    if block == "content":
        head = templates.get_template("_flash.html").render(ctx) if ctx.get("flash") else ""
        if "title" in template.blocks:
            title = "".join(template.blocks["title"](template.new_context(ctx))).strip()
            head = f"<title>{title}</title>\n{head}"
        html = head + html
    return html


def viewer_role(request: Request) -> str | None:
    """The signed-in viewer's role: all a rendering reused for other viewers may depend on."""
    role = getattr(getattr(request.state, "user", None), "role", None)
    return role if isinstance(role, str) else None


def _viewer_less(user: HostUser | None) -> dict[str, Any]:
    """What a rendering reused for other viewers sees of the viewer: nothing but the role (a
    stand-in user with no name, no id, no tenant), no CSRF token and no session. Whatever a
    template (a designer's too) asks of the viewer, it cannot show one viewer's to another."""
    stand_in = None
    if user is not None:
        stand_in = HostUser(id="", name="", email="", role=user.role, tenant=Tenant("", ""))
    return {
        "user": stand_in,
        "signed_in_here": False,
        "csrf_token": "",
        "htmx_headers": "",
        "csrf_field": _no_csrf_field,
    }


def _no_csrf_field() -> Markup:
    return Markup("")


def render_shared(
    request: Request, name: str, context: Mapping[str, Any], key: tuple[Any, ...]
) -> Markup:
    """Partial `name` rendered once for `key`, which names everything it shows (it is rendered
    with `request` and `context` alone: no user, no CSRF token), and reused for every request
    with that key (see `render(..., reuse=)`)."""

    def make() -> str:
        return _templates(request).get_template(name).render({"request": request, **context})

    return Markup(_reused(request, name, key, make))


def keeps_renderings(request: Request) -> bool:
    """Whether renderings are kept and reused: not with `TEMPLATE_RELOAD` (a designer editing
    templates, or a partial they include, sees each change at once)."""
    return not _templates(request).env.auto_reload


def _reused(request: Request, name: str, key: tuple[Any, ...], make: Callable[[], str]) -> str:
    """What `make()` renders of template `name`, kept for `key` in this app's templates and
    under its prefix (an app with other templates, or served at another prefix, renders its
    own); rendered anew each time with `TEMPLATE_RELOAD`."""
    if not keeps_renderings(request):
        return make()
    full_key = (_templates(request), request.scope.get("root_path", ""), name, *key)
    html = _FRAGMENTS.get(full_key)
    if html is MISSING:
        html = make()
        _FRAGMENTS.put(full_key, html)
    return html


#: Rendered polled fragments, by everything they show (`render(..., reuse=key)`).
_FRAGMENTS: TTLCache[tuple[Any, ...], str] = TTLCache(60.0, limit=20_000)


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    block: str | None = None,
    status: int = 200,
    reuse: tuple[Any, ...] | None = None,
) -> Response:
    """A full page for normal requests, one block for htmx requests (see the module doc).

    `reuse`: for a fragment answered again and again with the same content, a key naming
    everything it shows (the connection's state version, the URLs' query): the block rendered
    for that key and the viewer's role is sent again rather than rendered anew. It is rendered
    with nothing of the viewer but the role (`_viewer_less`), and without the one-time message
    (which waits for the next page)."""
    whole = name.rpartition("/")[2].startswith("_")
    if htmx.is_htmx(request) and not whole:
        part = block or "content"
        if reuse:

            def shared() -> str:
                return render_block(request, name, part, context or {}, shared=True)

            html = _reused(request, name, (part, viewer_role(request), *reuse), shared)
        else:
            ctx = _context(request, context, page=part == "content")
            html = render_block(request, name, part, ctx)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)
    ctx = _context(request, context, page=not whole)
    templates = _templates(request)
    return templates.TemplateResponse(request, name, ctx, status_code=status, headers=_HEADERS)


#: On every rendered answer.
_HEADERS = {"Vary": htmx.VARY, "Cache-Control": "no-store"}


@pass_context
def _url_for(context: Context, name: str, /, **params: Any) -> str:
    request: Request = context["request"]
    return url_for(request, name, **params)


@pass_context
def _step_url(context: Context, connection: Connection) -> str:
    request: Request = context["request"]
    return step_url(request, connection)


def _csrf_input(token: str) -> Markup:
    """The CSRF token of a plain form (the no-JavaScript path; htmx sends it as a header)."""
    return Markup(f'<input type="hidden" name="csrf_token" value="{escape(token)}">')


@pass_context
def _csrf_field(context: Context) -> Markup:
    return _csrf_input(context.get("csrf_token", ""))


class _Environment(Environment):
    """Jinja's environment, with each template's globals one plain dict.

    Jinja gives a template a `ChainMap` over the environment's globals, and every render copies
    it into the render's context key by key: about 10 µs with this app's twenty-odd globals, a
    tenth of a search answer. Here they are copied once, when the template loads. The globals
    are all set by `make_templates`, before any template loads (as Jinja asks: "avoid modifying
    any globals after a template is loaded")."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


#: A connection's status badge (`status_badge(connection)` in templates).
BADGE = "connections/_status_badge.html"


def _status_badge(
    env: Environment,
    rendered: dict[tuple[Any, ...], Markup],
    request: Request | None,
    connection: Connection,
) -> Markup:
    """`connections/_status_badge.html` for `connection`'s state, rendered once per status and
    kind (and the prefix the app is served at, for a badge with a link) and reused for every
    connection in that state: a list shows one per row, and as an include each copied the whole
    context. It is rendered with a stand-in connection holding only the status and the kind, so
    a badge can show nothing else, of this connection or another."""
    template = env.get_template(BADGE)
    root = request.scope.get("root_path", "") if request is not None else ""
    key = (root, connection.status, connection.kind)
    html = None if env.auto_reload else rendered.get(key)  # `TEMPLATE_RELOAD`: each time anew
    if html is None:
        if len(rendered) >= _BADGES_LIMIT:  # statuses are Waycore's words: not a closed set
            rendered.clear()
        state = Connection(id="", entity_id="", kind=connection.kind, status=connection.status)
        context: dict[str, Any] = {"connection": state}
        if request is not None:
            context.update(request=request, url_for=partial(url_for, request))
        html = rendered[key] = Markup(template.render(context))
    return html


_BADGES_LIMIT = 1000


def make_templates(directories: Sequence[Path], settings: Settings) -> Jinja2Templates:
    """The app's templates, searched in `directories` in order, with the globals, filters and
    per-request context (user, CSRF token) every template gets."""
    env = _Environment(
        loader=FileSystemLoader(directories),
        autoescape=True,  # every template is HTML
        auto_reload=settings.template_reload,
    )
    templates = Jinja2Templates(env=env)
    badges: dict[tuple[Any, ...], Markup] = {}

    def base_context(request: Request) -> dict[str, Any]:
        token = csrf_token(request.session) if "session" in request.scope else ""
        return {
            "user": getattr(request.state, "user", None),
            # The app's own session (demo or handoff) can be ended here; a host's sign-in, not.
            "signed_in_here": "session" in request.scope and SESSION_ID_KEY in request.session,
            "csrf_token": token,
            "htmx_headers": json.dumps({"X-CSRF-Token": token}),
            # Bound to the request here rather than globals taking the context: Jinja hands a
            # context-taking function a fresh copy of the whole context whenever a block has
            # set a variable (a few µs per call, dozens of calls a page). The globals below
            # remain for a template rendered without this context (`render_shared`).
            "url_for": partial(url_for, request),
            "step_url": partial(step_url, request),
            "csrf_field": partial(_csrf_input, token),
            "status_badge": partial(_status_badge, env, badges, request),
        }

    templates.context_processors.append(base_context)
    templates.env.globals.update(
        url_for=_url_for,
        step_url=_step_url,
        csrf_field=_csrf_field,
        bank_name=bank_name,
        htmx_config=json.dumps(htmx.CONFIG),
        terms_url=TERMS_OF_USE_URL,
        default_guide_url=DEFAULT_SETUP_GUIDE_URL,
        demo_mode=settings.demo_mode,
        status_view=status_view,
        status_badge=partial(_status_badge, env, badges, None),
        screen_copy=screen_copy,
        repair_label=repair_label,
        sync_label=sync_label,
        poll_seconds=settings.poll_interval_seconds,
        host_stylesheet=settings.host_stylesheet_url,
        support_reference=support_reference,
        support_url=settings.support_url,
        support_email=settings.support_email,
    )
    templates.env.filters.update(FILTERS)
    return templates
