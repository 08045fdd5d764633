"""Fixtures shared by every test module: a real PostgreSQL (tests/pg.py); the order in which
pytest-xdist gets the test files (tests/xdist_order.py)."""

from tests.pg import pg_database, postgres, postgres_instance  # noqa: F401  (pytest fixtures)
from tests.xdist_order import pytest_collection_modifyitems  # noqa: F401  (pytest hook)
