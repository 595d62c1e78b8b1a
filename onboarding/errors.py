"""The service layer's typed errors: what a rule refused, for the views to show.

```
OnboardingError
 ├── NotOwned          an id the signed-in tenant does not own (shown as 404, no Waycore call)
 ├── InvalidChoice     the bank choice cannot go on as entered (field messages)
 ├── LooksListed       an "unlisted" portal is on a listed bank's domain: offer that bank first
 ├── SetupNotComplete  setup completion was refused and the connection is still a draft
 └── EntityUnavailable the tenant's Waycore entity could not be resolved (onboarding.entities)
```

`WaitForWaycore` is a `waycore.errors.RateLimited` raised before any call: Waycore gave a
`Retry-After` for that action moments ago, and it is not sent again before then.

Waycore's own failures stay `waycore.errors.WaycoreError`s: a view shows them in the step.
"""

from __future__ import annotations

from waycore.errors import RateLimited
from waycore.models import Institution


class OnboardingError(Exception):
    """Base of the service layer's refusals."""


class NotOwned(OnboardingError):
    """The draft or connection in the URL or form is not the signed-in tenant's (or unknown)."""


class InvalidChoice(OnboardingError):
    """The bank choice cannot continue as entered.

    `errors` maps form fields to messages; `institution` is the bank it concerned, if any."""

    def __init__(self, errors: dict[str, str], *, institution: Institution | None = None) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.institution = institution


class LooksListed(OnboardingError):
    """The portal entered for an unlisted bank is on the host or registrable domain of listed
    banks (`institutions`): the customer is offered them, and chooses. The name and portal are
    kept as typed, to go on unchanged if they answer that theirs is different."""

    def __init__(self, institutions: list[Institution], *, bank_name: str, portal_url: str) -> None:
        super().__init__(", ".join(i.name for i in institutions))
        self.institutions = institutions
        self.bank_name = bank_name
        self.portal_url = portal_url


class WaitForWaycore(RateLimited):
    """Waycore answered this action with `Retry-After` a moment ago: it is not sent again before
    then (nothing was sent now). A `RateLimited` for the step to show, with the time left."""

    def __init__(self, action: str, retry_after: float) -> None:
        super().__init__(
            status=429,
            method="(not sent)",
            path=action,
            code="retry_after",
            message="Waycore asked to wait before this is sent again.",
            retry_after=retry_after,
        )
        self.action = action
