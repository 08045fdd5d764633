"""The order in which ``make test`` hands test files to its pytest-xdist workers.

``make test`` runs ``--dist loadfile --no-loadscope-reorder``: each file goes whole to one
worker (module-scoped servers are started once), in collection order. This hook puts the
files that take minutes (each holds real servers, a real daemon or subprocess batches) at the
front, longest first, so they start at once on both workers and the many fast files fill the
gaps and the tail; xdist's default reorder (most tests first) would leave the one-test
daemon file and the few-test server files to the end, one worker idling while the other
finishes them. The order within a file is unchanged (the CLI webserver tests rely on it).
"""

from __future__ import annotations

import pytest

# seconds each file took (summed over its tests, `pytest --durations`, 2 workers on 2 cores);
# only the order matters, and a file missing here just runs after these, in collection order
SLOW_FILES = {
    "test_cli_webserver.py": 300,
    "test_cli_webserver_data.py": 230,
    "test_deploy_postgres.py": 120,
    "test_crash_safety.py": 100,
    "test_overlap_safety.py": 70,
    "test_deploy_run_retries.py": 65,
    "test_daemon.py": 60,
    "test_gcs_graph.py": 50,
    "test_rotation_dagster.py": 40,
}


def _rank(item: pytest.Item) -> int:
    return -SLOW_FILES.get(item.path.name, 0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: collection order within a file and among the rest
