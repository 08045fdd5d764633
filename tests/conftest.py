"""Fixtures every test module can ask for, registered once here: a real PostgreSQL
(testkit/postgres.py), the Cartesia loopback server and client (tests/support/cartesia.py),
the GCS emulator (tests/support/delivery.py), a real `dagster dev` per CLI test module
(tests/support/webserver.py); and the order in which pytest-xdist gets the
test files (tests/support/xdist_order.py)."""

pytest_plugins = [
    "testkit.postgres",
    "tests.support.cartesia",
    "tests.support.delivery",
    "tests.support.webserver",
    "tests.support.xdist_order",
]
