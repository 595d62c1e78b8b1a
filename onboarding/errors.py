"""The service layer's typed errors: what a rule refused, for the views to show.

```
OnboardingError
 ├── NotOwned          an id the signed-in tenant does not own (shown as 404, no Waycore call)
 ├── InvalidChoice     the bank choice cannot go on as entered (field messages, suggestions)
 ├── SetupNotComplete  setup completion was refused and the connection is still a draft
 └── EntityUnavailable the tenant's Waycore entity could not be resolved (onboarding.entities)
```

Waycore's own failures stay `waycore.errors.WaycoreError`s: a view shows them in the step.
"""

from __future__ import annotations

from waycore.models import Institution


class OnboardingError(Exception):
    """Base of the service layer's refusals."""


class NotOwned(OnboardingError):
    """The draft or connection in the URL or form is not the signed-in tenant's (or unknown)."""


class InvalidChoice(OnboardingError):
    """The bank choice cannot continue as entered.

    `errors` maps form fields to messages; `suggestions` are supported banks the customer should
    select instead of entering their portal as an unlisted bank."""

    def __init__(
        self,
        errors: dict[str, str],
        *,
        institution: Institution | None = None,
        suggestions: list[Institution] | None = None,
    ) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.institution = institution
        self.suggestions = suggestions or []
