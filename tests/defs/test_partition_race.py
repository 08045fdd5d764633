"""Two processes adding the same dynamic partitions at once, on Dagster's sqlite storage.

Dagster's sqlite event storage reads the existing keys, then inserts the rest: without
``add_partitions`` one of two racing runs fails with a UNIQUE error (seen in CI: two batches
and an inbox ingest adding the same developers).
"""

import multiprocessing as mp

import dagster as dg
import pytest

from hybrid_audio_dagster.defs.partitions import add_partitions

ROUNDS = 25


def _racer(home: str, barrier, use_helper: bool, errors) -> None:
    with dg.DagsterInstance.from_config(home) as instance:
        for round_no in range(ROUNDS):
            keys = [f"r{round_no:02d}-k{i:02d}" for i in range(20)]
            barrier.wait(timeout=60)
            try:
                if use_helper:
                    add_partitions(instance, "race", keys)
                else:
                    instance.add_dynamic_partitions("race", keys)
            except Exception as exc:  # noqa: BLE001 - counted and reported by the parent
                errors.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def _race(tmp_path, use_helper: bool) -> tuple[list[str], list[str]]:
    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:  # schema created once, up front
        instance.get_dynamic_partitions("race")
    ctx = mp.get_context("spawn")
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(home), barrier, use_helper, errors)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return found, instance.get_dynamic_partitions("race")


@pytest.mark.timeout(240)
def test_two_processes_adding_the_same_partitions_never_fail(tmp_path):
    errors, keys = _race(tmp_path, use_helper=True)
    assert errors == []
    assert len(keys) == len(set(keys)) == ROUNDS * 20


@pytest.mark.timeout(240)
def test_the_raw_dagster_call_does_race_on_sqlite(tmp_path):
    """Pins the reason for ``add_partitions``: if Dagster ever upserts on sqlite, this fails
    and the helper can go."""
    errors, keys = _race(tmp_path, use_helper=False)
    assert errors, "expected at least one UNIQUE error in 25 simultaneous rounds"
    assert all("IntegrityError" in e for e in errors), errors


def test_many_keys_go_in_chunks_sqlite_can_bind(tmp_path, monkeypatch):
    """A roster of 300,000 names is one add too many variables for sqlite: the keys go in chunks."""
    from hybrid_audio_dagster.defs import partitions

    monkeypatch.setattr(partitions, "ADD_CHUNK", 7)
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        sizes = []
        real = instance.add_dynamic_partitions
        monkeypatch.setattr(instance, "add_dynamic_partitions", lambda name, keys: (sizes.append(len(keys)), real(name, keys)))
        instance.add_dynamic_partitions("big", ["k00", "k01"])
        keys = [f"k{i:02d}" for i in range(30)]
        assert add_partitions(instance, "big", keys) == keys[2:]
        assert sizes == [2, 7, 7, 7, 7] and sorted(instance.get_dynamic_partitions("big")) == keys
