"""Alembic migrations of the store's schema; run them with `python manage.py migrate`."""
