"""The screens and endpoints, one module per screen or resource, each exporting `routes`.

Screens: `connections` (the list), `choose_bank` (before Waycore has a connection),
`setup` (delegated user, finish setup, activation), `repair` (re-authentication, portal
correction), `connection` (a connection's page, its watched status, sync, delete), `auth` (demo
sign-in), `webhooks` (Waycore's signed events), `health` (`/healthz`, `/readyz`), `audit` (the
audit trail, for admins).
Helpers: `guards` (who is asking, what they own, which step), `render` (page or fragment),
`htmx` (its protocol), `urls` (every URL, from the route table), `routing` (the router,
remembering which route answered a path), `errors` (problems and the exception handlers),
`status` (the status display rules and what each state's screen says), `support` (the support
contact and reference), `funnel` (flow events for the host), `filters` (Jinja filters).

`routes` and `EXCEPTION_HANDLERS` are what `server.create_app` wires in.
"""

from __future__ import annotations

from views import (
    audit,
    auth,
    choose_bank,
    connection,
    connections,
    health,
    repair,
    setup,
    webhooks,
)
from views.errors import EXCEPTION_HANDLERS, csrf_refused
from views.guards import AppState

#: The routes polled most often first, and the list (the router walks them in order for a path
#: it has not answered yet, or no longer remembers: `views.routing`); then fixed paths
#: (/connections/new ...) before /connections/{connection_id}.
_POLLED = (
    "activation_status",
    "sync_panel",
    "search_institutions",
    "connection_status",
    "connections",
)

_screens = [
    *health.routes,
    *auth.routes,
    *connections.routes,
    *choose_bank.routes,
    *setup.routes,
    *repair.routes,
    *connection.routes,
    *webhooks.routes,
    *audit.routes,
]
routes = [
    *(r for name in _POLLED for r in _screens if getattr(r, "name", None) == name),
    *(r for r in _screens if getattr(r, "name", None) not in _POLLED),
]

__all__ = ["EXCEPTION_HANDLERS", "AppState", "csrf_refused", "routes", "WEBHOOK_PATH"]

WEBHOOK_PATH = webhooks.PATH
