"""A test receiver for the host events: what a host's endpoint would do, over
`httpx.MockTransport`. It checks every delivery's signature the way a host would (with
`waycore.webhooks.verify`, since the events are signed exactly like Waycore's webhooks), can be
told to fail the next N deliveries, and keeps what it received."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from onboarding.events import SIGNATURE_HEADER
from waycore.webhooks import SignatureError, verify

HOST_SECRET = "host-events-secret-" + "h" * 24
HOST_URL = "https://host.example/onboarding-events"


@dataclass
class Receiver:
    secret: str = HOST_SECRET
    #: Answer the next `fail_next` deliveries with 503 (before checking anything).
    fail_next: int = 0
    attempts: list[httpx.Request] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(request)
        if self.fail_next > 0:
            self.fail_next -= 1
            return httpx.Response(503)
        try:
            verify(self.secret, request.headers.get(SIGNATURE_HEADER), request.content)
        except SignatureError:
            self.bad_signatures += 1
            return httpx.Response(400)
        self.accepted.append(json.loads(request.content))
        return httpx.Response(204)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def types(self) -> list[str]:
        return [str(event["type"]) for event in self.accepted]

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [event for event in self.accepted if event["type"] == type]

    def raw(self) -> str:
        """Everything that reached the host, headers and bodies, for secret checks."""
        return "\n".join(
            "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n" + r.content.decode()
            for r in self.attempts
        )
