"""The support contact and the copyable reference shown on every error and every state that
needs attention.

The reference says what support needs to find the case, and nothing secret: the request id
(Waycore's `requestId` when a Waycore error carried one, else this app's own request id, the one
on every log line of the request), the connection id and status when there is a connection, and
the time in UTC. Templates include `_support.html`, which calls `support_reference()`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from logs import current_request_id
from waycore.models import Connection


@dataclass(frozen=True)
class SupportReference:
    reference: str
    connection_id: str | None
    status: str | None
    time: str
    #: A page-unique element id for the copy button's target.
    element_id: str

    @property
    def text(self) -> str:
        """One line to paste into a message to support."""
        parts = [f"Reference {self.reference}"]
        if self.connection_id:
            parts.append(f"Connection {self.connection_id}")
        if self.status:
            parts.append(f"Status {self.status}")
        parts.append(f"Time {self.time}")
        return " | ".join(parts)


def reference_for(
    *, reference: str | None = None, connection: Connection | None = None
) -> SupportReference:
    """The reference of what the page shows now: `reference` (a problem's), else the request's."""
    return SupportReference(
        reference=reference or current_request_id() or "none",
        connection_id=connection.id if connection else None,
        status=connection.status if connection else None,
        time=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        element_id="support-ref-" + secrets.token_hex(4),
    )


@pass_context
def support_reference(context: Context) -> SupportReference:
    """Template global: the reference for the including template's `problem` (or `reference`)
    and `connection`, whichever it has."""
    problem: Any = context.get("problem")
    reference = getattr(problem, "reference", None) or context.get("reference")
    connection = context.get("connection")
    return reference_for(
        reference=reference if isinstance(reference, str) else None,
        connection=connection if isinstance(connection, Connection) else None,
    )
