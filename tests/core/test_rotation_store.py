"""The rotation's persistent store: cycles, previews, run keys, dataset changes, seeds,
seeks, the audit trail, crashes around the commit and corrupt state."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from itertools import product
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from hybrid_audio_dagster.core.rotation import state as rotation_state
from hybrid_audio_dagster.core.rotation.batch import Batch
from hybrid_audio_dagster.core.rotation.errors import DatasetError, MissingReasonError, RotationStateError, RunKeyConflictError, SeekError
from hybrid_audio_dagster.core.rotation.ledger import read_audit
from hybrid_audio_dagster.core.rotation.order import KeySet, PairOrder, StreamOrder
from hybrid_audio_dagster.core.rotation.store import RotationStore
from tests.support.rotation import fast, keys, make_store, seeds, snapshot

# ------------------------------------------------------------------ persistent store


def test_advance_covers_each_cycle_exactly_once_then_rolls_over(tmp_path: Path) -> None:
    names, devs, scripts = keys("n", 5), keys("d", 3), ["followup-en", "seguimiento-es"]
    store = make_store(tmp_path, names, devs, scripts)
    got: list = []
    ks = [1, 4, 2, 7, 3, 8, 5]  # 30 = two cycles of 15
    for k in ks:
        batch = store.advance(k)
        assert len(batch) == k and not batch.replayed
        got.extend(batch.items)
    by_cycle = defaultdict(list)
    for a in got:
        by_cycle[a.cycle].append(a)
    assert sorted(by_cycle) == [0, 1]
    for items in by_cycle.values():
        assert sorted(a.pair for a in items) == sorted(product(names, devs))
        assert [a.position for a in items] == list(range(15))
    # cycle 1 is the pure order with the last pair of cycle 0 to avoid (G6)
    expected = PairOrder(names, devs, seed="s", cycle=1, avoid=by_cycle[0][-1].pair)
    assert [a.pair for a in by_cycle[1]] == list(expected)
    assert set(by_cycle[0][-1].pair).isdisjoint(by_cycle[1][0].pair)
    # scripts: one per pair, round robin, never the same twice in a row
    scripts_seen = [a.script for a in got]
    assert all(s in scripts for s in scripts_seen)
    assert all(a != b for a, b in zip(scripts_seen, scripts_seen[1:]))
    status = store.status()
    assert (status.cycle, status.cursor, status.remaining, status.seq) == (1, 15, 0, len(ks))
    assert status.last == got[-1].pair


@fast(25)
@given(
    n_names=st.integers(1, 7),
    n_devs=st.integers(1, 7),
    n_scripts=st.integers(0, 3),
    seed=seeds,
    warmup=st.lists(st.integers(1, 9), max_size=4),
    n=st.integers(0, 60),
    mode=st.sampled_from(["pair", "batch", None]),
)
def test_preview_never_changes_state_and_equals_the_next_advances(n_names, n_devs, n_scripts, seed, warmup, n, mode) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        scripts = keys("s", n_scripts)
        if not scripts and mode is not None:
            mode = "none"
        store = make_store(root, keys("n", n_names), keys("d", n_devs), scripts, seed=seed)
        for k in warmup:
            store.advance(k, script_mode=mode)
        before, status = snapshot(root), store.status()
        preview = list(store.preview(n, script_mode=mode))
        if scripts:
            list(store.script_stream(5))
        list(store.stream("names", 5))
        assert snapshot(root) == before
        assert store.status() == status
        assert len(preview) == n
        if n:
            assert list(store.advance(n, script_mode=mode).items) == preview


def test_run_key_retry_returns_the_same_batch(tmp_path: Path) -> None:
    store = make_store(tmp_path, keys("n", 4), keys("d", 4), ["a", "b"])
    first = store.advance(3, run_key_basis="2024-06-01")
    again = store.advance(3, run_key_basis="2024-06-01")
    assert again.replayed and again.items == first.items and again.seq == first.seq
    assert store.status().cursor == 3
    nxt = store.advance(3, run_key_basis="2024-06-02")
    assert set(nxt.pairs).isdisjoint(first.pairs)
    assert store.batch_for("2024-06-01") == first
    with pytest.raises(RunKeyConflictError, match="2024-06-01"):
        store.advance(5, run_key_basis="2024-06-01")
    # a fresh store object (another process) sees the same memory
    other = make_store(tmp_path, keys("n", 4), keys("d", 4), ["a", "b"])
    assert other.advance(3, run_key_basis="2024-06-02").items == nxt.items
    assert [r["event"] for r in store.audit_records()] == ["advance", "replay", "advance", "replay"]


def test_run_keys_are_remembered_up_to_the_limit(tmp_path: Path) -> None:
    store = make_store(tmp_path, keys("n", 9), keys("d", 9), remember_batches=3)
    for t in range(5):
        store.advance(1, run_key_basis=f"t{t}")
    assert store.batch_for("t1") is None and store.batch_for("t2") is not None
    assert store.advance(1, run_key_basis="t4").replayed


def test_removed_keys_are_skipped_and_new_keys_wait_for_the_next_cycle(tmp_path: Path) -> None:
    names, devs = ["ana", "ben", "cid", "dan"], ["hilton", "marriott", "wyndham"]
    store = make_store(tmp_path, names, devs)
    head = store.advance(4).items
    order = PairOrder(names, devs, seed="s", cycle=0)
    assert [a.pair for a in head] == list(order.pairs(0, 4))

    # mid-cycle: "ben" leaves, "eve" joins; the cycle keeps its order
    changed = make_store(tmp_path, ["ana", "cid", "dan", "eve"], devs)
    assert changed.status().dataset_changed
    expected_rest = [p for p in order.pairs(4) if p[0] != "ben"]
    cycle0 = changed.advance(len(expected_rest)).items
    assert [a.pair for a in cycle0] == expected_rest
    assert all(a.cycle == 0 and a.pair == order.pair_at(a.position) for a in cycle0)  # positions kept
    # cycle 1 is built from the new datasets and covers them exactly once
    cycle1 = changed.advance(12).items
    assert all(a.cycle == 1 for a in cycle1)
    assert sorted(a.pair for a in cycle1) == sorted(product(["ana", "cid", "dan", "eve"], devs))
    assert not changed.status().dataset_changed
    audit = changed.audit_records()
    skipped = sum(1 for p in order.pairs(4) if p[0] == "ben")
    assert audit[1]["detail"]["skipped"] + audit[2]["detail"]["skipped"] == skipped
    assert audit[2]["detail"]["cycles_started"] == [1]


def test_a_removed_key_that_returns_before_its_turn_is_handed_out(tmp_path: Path) -> None:
    names, devs = keys("n", 3), keys("d", 3)
    order = PairOrder(names, devs, seed="s", cycle=0)
    gone = order.pair_at(8)[1]  # the developer of the last pair
    assert make_store(tmp_path, names, devs).advance(1).pairs == [order.pair_at(0)]
    reduced = make_store(tmp_path, names, [d for d in devs if d != gone]).advance(2).items
    assert [a.pair for a in reduced] == [p for p in order.pairs(1) if p[1] != gone][:2]
    cursor = reduced[-1].position + 1
    back = make_store(tmp_path, names, devs).advance(9 - cursor).items
    assert [a.pair for a in back] == list(order.pairs(cursor, 9))
    assert back[-1].developer == gone


def test_removing_a_whole_dimension_ends_the_cycle_at_once(tmp_path: Path) -> None:
    make_store(tmp_path, keys("n", 50), keys("d", 40)).advance(10)
    replaced = make_store(tmp_path, ["zoe"], ["zzz"])
    batch = replaced.advance(1)
    assert batch.items[0].pair == ("zoe", "zzz") and batch.items[0].cycle == 1
    assert batch.skipped == 50 * 40 - 10 and batch.cycles_started == (1,)


@fast(25)
@given(
    n_names=st.integers(2, 6),
    n_devs=st.integers(2, 6),
    seed=seeds,
    data=st.data(),
)
def test_dataset_changes_never_repeat_and_never_drop_a_pair_that_stayed(n_names, n_devs, seed, data) -> None:
    """Pairs whose keys stay present for the whole cycle are handed out exactly once."""
    names0, devs0 = set(keys("n", n_names)), set(keys("d", n_devs))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        names, devs = set(names0), set(devs0)
        ever_absent: set[str] = set()
        handed: list = []
        extra = 0
        while True:
            store = make_store(root, names, devs, seed=seed)
            batch = store.advance(data.draw(st.integers(1, 6))).items
            assert all(a.name in names and a.developer in devs for a in batch)  # removed: skipped
            handed.extend(batch)
            if handed[-1].cycle > 0:
                break
            # change the datasets: drop some, add new ones (never empty)
            drop = data.draw(st.sets(st.sampled_from(sorted(names | devs)), max_size=2))
            if names - drop and devs - drop:
                names, devs = names - drop, devs - drop
                ever_absent |= drop
            if data.draw(st.booleans()):
                extra += 1
                names.add(f"new{extra}")
            back = data.draw(st.sets(st.sampled_from(sorted(names0 | devs0)), max_size=1))
            names |= back & names0
            devs |= back & devs0
        cycle0 = [a.pair for a in handed if a.cycle == 0]
        note(f"cycle0={cycle0}")
        assert len(cycle0) == len(set(cycle0))
        assert set(cycle0) <= set(product(names0, devs0))  # new keys waited
        stayed = {(n, d) for n, d in product(names0, devs0) if n not in ever_absent and d not in ever_absent}
        assert stayed <= set(cycle0)


def test_seed_change_applies_from_the_next_cycle_and_reset_applies_it_now(tmp_path: Path) -> None:
    names, devs = keys("n", 3), keys("d", 2)
    make_store(tmp_path, names, devs, seed="old").advance(2)
    new = make_store(tmp_path, names, devs, seed="new")
    status = new.status()
    assert (status.seed, status.configured_seed) == ("old", "new")
    rest = new.advance(4 + 6).items
    old_order = PairOrder(names, devs, seed="old", cycle=0)
    assert [a.pair for a in rest[:4]] == list(old_order.pairs(2))
    assert [a.pair for a in rest[4:]] == list(PairOrder(names, devs, seed="new", cycle=1, avoid=rest[3].pair))
    assert new.status().seed == "new"

    with pytest.raises(MissingReasonError):
        new.reset(reason=" ")
    after = new.reset(reason="campaign restarted", cycle=7)
    assert (after.cycle, after.cursor) == (7, 0)
    first = new.advance(1).items[0]
    assert first.pair == PairOrder(names, devs, seed="new", cycle=7, avoid=rest[-1].pair).pair_at(0)
    reset_record = [r for r in new.audit_records() if r["event"] == "reset"][0]
    assert reset_record["reason"] == "campaign restarted"
    assert reset_record["detail"]["before"] == {"cycle": 1, "cursor": 6}


def test_seek_by_position_pair_or_key_records_the_reason(tmp_path: Path) -> None:
    names, devs = keys("n", 4), keys("d", 3)
    store = make_store(tmp_path, names, devs, ["a", "b", "c"])
    store.advance(5)
    order = PairOrder(names, devs, seed="s", cycle=0)
    assert store.seek(2, reason="re-send after a TTS outage").cursor == 2
    assert store.advance(1, script_mode="none").items[0].pair == order.pair_at(2)
    target = order.pair_at(10)
    assert store.seek(target, reason="jump").cursor == 10
    assert store.seek(12, reason="end of cycle").remaining == 0
    assert store.seek("c", reason="pin", rotation="scripts").cursor < 3
    assert store.next_script() == "c"
    with pytest.raises(SeekError, match="outside cycle 0"):
        store.seek(13, reason="too far")
    with pytest.raises(SeekError, match="not in cycle"):
        store.seek(("nobody", "d000"), reason="x")
    with pytest.raises(MissingReasonError):
        store.seek(0, reason="")
    seeks = [r for r in store.audit_records() if r["event"] == "seek"]
    assert [r["reason"] for r in seeks] == ["re-send after a TTS outage", "jump", "end of cycle", "pin"]
    assert seeks[0]["detail"]["before"] == {"cycle": 0, "cursor": 5}


def test_single_dimension_streams(tmp_path: Path) -> None:
    names, devs, scripts = keys("n", 5), keys("d", 3), ["x", "y", "z"]
    store = make_store(tmp_path, names, devs, scripts)
    peek = list(store.stream("names", 12))
    got = [store.next_name() for _ in range(12)]
    assert got == peek
    assert sorted(got[:5]) == names and sorted(got[5:10]) == names
    assert all(a != b for a, b in zip(got, got[1:]))
    assert sorted(store.next_developer() for _ in range(3)) == devs
    assert store.status("pairs").cursor == 0  # streams don't touch the pair rotation
    peek_scripts = list(store.script_stream(4))
    assert store.take("scripts", 4) == peek_scripts
    batch = store.advance(6, script_mode="batch")
    assert len({a.script for a in batch.items}) == 1
    assert batch.items[0].script == list(StreamOrder(scripts, seed="s", cycle=1, label="scripts", avoid=peek_scripts[2]))[1]
    assert all(a.script is None for a in store.advance(2, script_mode="none").items)
    no_scripts = make_store(tmp_path / "other", names, devs)
    assert no_scripts.advance(1).items[0].script is None
    with pytest.raises(DatasetError, match="scripts: the dataset is empty"):
        no_scripts.next_script()


def test_audit_trail_lists_every_committed_operation(tmp_path: Path) -> None:
    store = make_store(tmp_path, keys("n", 3), keys("d", 3), ["a"])
    b1 = store.advance(2, actor="scheduler", run_key_basis="tick-1")
    store.next_name()
    store.reset(reason="test")
    records = read_audit(tmp_path / "logs" / "audit.jsonl")
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert [(r["event"], r["rotation"]) for r in records] == [("advance", "pairs"), ("take", "names"), ("reset", "pairs")]
    assert records[0]["actor"] == "scheduler" and records[0]["run_key"] == "tick-1"
    assert Batch.from_dict(records[0]["detail"]) == b1
    assert records[0]["ts"].endswith("+00:00")


def test_default_audit_path_is_under_logs(tmp_path: Path) -> None:
    store = RotationStore(tmp_path / "rot" / "state.json", names=["a"], developers=["b"], fsync=False)
    store.advance(1)
    assert (tmp_path / "rot" / "logs" / "rotation_audit.jsonl").is_file()


def test_a_crash_before_the_commit_hands_out_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(tmp_path, keys("n", 4), keys("d", 4))
    store.advance(2)
    before = snapshot(tmp_path)

    def boom(path, text, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(rotation_state, "atomic_write_text", boom)  # the module that writes the state file
    with pytest.raises(OSError, match="disk full"):
        store.advance(3)
    assert snapshot(tmp_path) == before
    monkeypatch.undo()
    order = PairOrder(keys("n", 4), keys("d", 4), seed="s", cycle=0)
    assert store.advance(3).pairs == list(order.pairs(2, 5))


def test_a_crash_after_the_commit_is_recoverable_and_the_audit_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(tmp_path, keys("n", 4), keys("d", 4))
    calls = {"n": 0}
    real_append = RotationStore._append_audit

    def crash_once(self, record):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the process dies after the commit
        real_append(self, record)

    monkeypatch.setattr(RotationStore, "_append_audit", crash_once)
    with pytest.raises(KeyboardInterrupt):
        store.advance(3)
    lost = store.last_batch()  # committed: recoverable without a run key
    assert lost is not None and lost.cursor_after == 3
    assert read_audit(tmp_path / "logs" / "audit.jsonl") == []
    store.advance(1)  # the next transaction appends the missing record first
    records = read_audit(tmp_path / "logs" / "audit.jsonl")
    assert [r["seq"] for r in records] == [1, 2]
    assert Batch.from_dict(records[0]["detail"]) == lost


def test_a_torn_audit_line_is_tolerated(tmp_path: Path) -> None:
    store = make_store(tmp_path, keys("n", 3), keys("d", 3))
    store.advance(1)
    with open(tmp_path / "logs" / "audit.jsonl", "ab") as f:
        f.write(b'{"seq": 2, "ts": "to')  # a crash mid-append on power loss
    store.advance(1)
    assert [r["seq"] for r in store.audit_records()] == [1, 2]


def test_corrupt_state_and_sidecars_are_reported_not_reset(tmp_path: Path) -> None:
    names, devs = keys("n", 3), keys("d", 3)
    make_store(tmp_path, names, devs).advance(1)
    changed = make_store(tmp_path, names[:2], devs)
    sidecar = tmp_path / "state" / "state.json.members" / f"{KeySet(names).fingerprint}.json"
    pristine = sidecar.read_bytes()
    sidecar.write_bytes(pristine.replace(b"n000", b"n00X"))
    rotation_state._MEMBER_CACHE.clear()
    with pytest.raises(RotationStateError, match="does not match its name"):
        changed.advance(1)
    sidecar.unlink()
    with pytest.raises(RotationStateError, match="membership of the current cycle is missing"):
        changed.status()
    sidecar.write_bytes(pristine)
    assert changed.advance(1).items[0].cycle == 0
    (tmp_path / "state" / "state.json").write_text("{not json")
    with pytest.raises(RotationStateError, match="corrupt rotation state"):
        changed.advance(1)
    (tmp_path / "state" / "state.json").write_text('{"version": 99}')
    with pytest.raises(RotationStateError, match="unsupported rotation state version 99"):
        changed.status()


def test_argument_errors_name_the_problem(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["a"], ["b"])
    with pytest.raises(ValueError, match="k must be a positive int"):
        store.advance(0)
    with pytest.raises(ValueError, match="script_mode"):
        store.advance(1, script_mode="daily")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="scripts"):
        store.advance(1, script_mode="pair")
    with pytest.raises(ValueError, match="unknown rotation"):
        store.status("templates")  # type: ignore[arg-type]
