"""Fixtures shared by every test module: a real PostgreSQL (tests/pg.py)."""

from tests.pg import pg_database, postgres, postgres_instance  # noqa: F401  (pytest fixtures)
