"""The service layer between the views and the boundaries (`store`, `waycore`).

- `journey`: which screen a connection belongs on (`step_for`), one table;
- `service`: the rules that combine the store and Waycore (ownership, bank choice, create or
  return, finish setup, settling a ready connection, sync cooldown, delete, the list);
- `entities`: the tenant's Waycore entity, resolved once in the background;
- `errors`: the typed refusals the views turn into screens.

Nothing here sees a request, a template or a URL.
"""
