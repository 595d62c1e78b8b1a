"""The one render helper: a full page, or only the block htmx asked for.

`render()` returns the whole page unless the request is an htmx request (and not a history
restore); then it renders a single named block of the same template: the block given, else the
block named after the `HX-Target` element id (`activation-status` -> `activation_status`), else
`content` (the inside of `<main id="main">`, with a `<title>` so htmx updates the tab title).
Every response says `Vary: HX-Request, HX-History-Restore-Request` and `Cache-Control: no-store`
(these pages show bank details; no shared cache or history cache may keep them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from views import htmx


def _templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def render_block(request: Request, name: str, block: str, context: Mapping[str, Any]) -> str:
    """Render one block of template `name` with the same context a full page would get."""
    templates = _templates(request)
    ctx: dict[str, Any] = {"request": request}
    for processor in templates.context_processors:
        ctx.update(processor(request))
    ctx.update(context)
    template = templates.get_template(name)
    block_render = template.blocks.get(block)
    if block_render is None:
        raise LookupError(f"template {name!r} has no block {block!r}")
    jinja_context = template.new_context(ctx)
    html = "".join(block_render(jinja_context))
    if block == "content" and "title" in template.blocks:
        title = "".join(template.blocks["title"](template.new_context(ctx))).strip()
        html = f"<title>{title}</title>\n{html}"
    return html


def _block_for(request: Request, name: str, block: str | None) -> str:
    if block:
        return block
    target = htmx.target(request)
    if target and target != "main":
        candidate = target.replace("-", "_")
        if candidate in _templates(request).get_template(name).blocks:
            return candidate
    return "content"


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    block: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    push_url: str | None = None,
) -> Response:
    """A full page for normal requests, one block for htmx requests (see the module doc)."""
    ctx = dict(context or {})
    response: Response
    if htmx.is_htmx(request):
        html = render_block(request, name, _block_for(request, name, block), ctx)
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    else:
        response = _templates(request).TemplateResponse(
            request, name, ctx, status_code=status, headers=dict(headers or {})
        )
    response.headers["Vary"] = htmx.VARY
    response.headers["Cache-Control"] = "no-store"
    if push_url:
        response.headers[htmx.HX_PUSH_URL] = push_url
    return response
