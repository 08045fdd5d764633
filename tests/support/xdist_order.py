"""The order in which ``make test`` and ``make test-slow`` hand test files to their pytest-xdist
workers.

Both run ``--dist loadfile --no-loadscope-reorder``: each file goes whole to one
worker (module-scoped servers are started once), in collection order. This hook puts the
files that take minutes (each holds real servers, a real daemon or subprocess batches) at the
front, longest first, so they start at once on both workers and the many fast files fill the
gaps and the tail; xdist's default reorder (most tests first) would leave the one-test
daemon file and the few-test server files to the end, one worker idling while the other
finishes them. The order within a file is unchanged (the CLI webserver tests rely on it).
"""

from __future__ import annotations

import pytest

# seconds each file took (summed over its tests, `pytest --durations`, 2 workers on 2 cores, both
# tiers); only the order matters, and a file missing here just runs after these, in collection order
SLOW_FILES = {
    "test_cli_reads.py": 420,
    "test_cli_webserver.py": 390,
    "test_cli_webserver_data.py": 340,
    "test_ui_materialize_all.py": 330,
    "test_deploy_postgres.py": 200,
    "test_crash_safety.py": 190,
    "test_daemon.py": 150,
    "test_suppression_crash.py": 150,
    "test_campaign_life.py": 110,
    "test_rotation_dagster.py": 110,
    "test_partition_fingerprint.py": 97,
    "test_overlap_safety.py": 93,
    "test_graph.py": 82,
    "test_deploy_run_retries.py": 64,
    "test_gcs_graph.py": 63,
    "test_rotation_variants.py": 54,
    "test_variants.py": 52,
    "test_inbox_sensor.py": 46,
    "test_piper_engine.py": 46,
    "test_pronunciation.py": 40,
    "test_schedule.py": 38,
    "test_suppression.py": 31,
    "test_rotation_processes.py": 31,
}


def _rank(item: pytest.Item) -> int:
    return -SLOW_FILES.get(item.path.name, 0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: collection order within a file and among the rest
