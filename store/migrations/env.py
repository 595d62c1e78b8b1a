"""Alembic's entry point for the store: runs migrations on the connection `store.migrate` hands
over (in `config.attributes["connection"]`), inside one transaction.

There is no alembic.ini: migrations run through `python manage.py migrate` (and, for SQLite, at
the app's start-up), both via `store.migrate`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the store's migrations with `python manage.py migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite changes most table definitions by copying the table ("batch" mode).
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
