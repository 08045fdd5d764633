"""The rotation store across processes: a crash at each step of an advance, SIGKILL at
random moments, two processes and two threads advancing at once."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from itertools import product
from pathlib import Path

import pytest

from hybrid_audio_dagster.core.rotation.ledger import read_audit
from hybrid_audio_dagster.core.rotation.order import PairOrder
from hybrid_audio_dagster.core.rotation.store import RotationStore
from tests.support.rotation import ROOT, keys, make_store

# ------------------------------------------------------------------ processes: concurrency and crashes

_WORKER = r"""
import json, os, sys, time
from pathlib import Path
from hybrid_audio_dagster.core.rotation.store import RotationStore
from hybrid_audio_dagster.core.rotation import state as r_state

cfg = json.loads(sys.argv[1])
out = Path(cfg["out"])

if cfg.get("crash"):
    mode, at = cfg["crash"], cfg["crash_at"]
    calls = {"n": 0}
    real_write, real_append = r_state.atomic_write_text, RotationStore._append_audit

    def write(path, text, **kw):
        if Path(path).name != "state.json":
            return real_write(path, text, **kw)
        calls["n"] += 1
        if calls["n"] == at and mode == "before_commit":
            os._exit(70)
        if calls["n"] == at and mode == "torn_temp":
            tmp = Path(path).with_name(".state.json.crash.tmp")
            tmp.write_text(text[: len(text) // 2])
            os._exit(71)
        real_write(path, text, **kw)
        if calls["n"] == at and mode == "after_commit":
            os._exit(72)

    def append(self, record):
        real_append(self, record)
        if calls["n"] == at and mode == "after_audit":
            os._exit(73)

    r_state.atomic_write_text = write
    RotationStore._append_audit = append

store = RotationStore(cfg["state"], names=cfg["names"], developers=cfg["devs"], scripts=cfg.get("scripts", ()),
                        seed=cfg["seed"], audit_path=cfg["audit"], fsync=cfg.get("fsync", False))

if cfg.get("go"):
    while not os.path.exists(cfg["go"]):
        time.sleep(0.001)

# the consumer's own log: complete lines are ticks it received; a partial line is dropped
done = []
if out.exists():
    raw = out.read_bytes()
    lines = raw.split(b"\n")
    done = [json.loads(l) for l in lines[:-1] if l.strip()]
    out.write_bytes(b"".join(l + b"\n" for l in lines[:-1] if l.strip()))
with open(out, "a") as f:
    for t in range(len(done), cfg["ticks"]):
        key = f"tick-{t}" if cfg.get("run_keys", True) else None
        batch = store.advance(cfg["k"], run_key_basis=key)
        f.write(json.dumps({"tick": t, "pairs": batch.pairs, "cycles": [a.cycle for a in batch.items]}) + "\n")
        f.flush()
"""


def _run_worker(tmp_path: Path, cfg: dict, *, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(_WORKER)
    args = [sys.executable, str(script), json.dumps(cfg)]
    if wait:
        return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _consumer_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _reference(cfg: dict, root: Path) -> list[list[tuple[str, str]]]:
    """The batches an uncrashed run hands out (in-process, fresh state)."""
    store = RotationStore(
        root / "ref" / "state.json",
        names=cfg["names"],
        developers=cfg["devs"],
        seed=cfg["seed"],
        audit_path=root / "ref" / "audit.jsonl",
        fsync=False,
    )
    return [store.advance(cfg["k"], run_key_basis=f"tick-{t}").pairs for t in range(cfg["ticks"])]


def _assert_exactly_once(tmp_path: Path, cfg: dict) -> None:
    log = _consumer_log(Path(cfg["out"]))
    assert [e["tick"] for e in log] == list(range(cfg["ticks"]))
    got = [[tuple(p) for p in e["pairs"]] for e in log]
    assert got == _reference(cfg, tmp_path)  # nothing handed twice, nothing lost, same order
    per_cycle: dict[int, list] = defaultdict(list)
    for e in log:
        for p, c in zip(e["pairs"], e["cycles"]):
            per_cycle[c].append(tuple(p))
    full = sorted(product(cfg["names"], cfg["devs"]))
    for c, pairs in per_cycle.items():
        assert len(pairs) == len(set(pairs))
        if c < max(per_cycle):
            assert sorted(pairs) == full
    # the audit trail has one record per commit, in order, none missing after repair
    store = RotationStore(cfg["state"], names=cfg["names"], developers=cfg["devs"], seed=cfg["seed"], audit_path=cfg["audit"], fsync=False)
    seqs = [r["seq"] for r in store.audit_records()]
    assert seqs == list(range(1, store.status().seq + 1))


def _crash_cfg(tmp_path: Path, **extra) -> dict:
    return {
        "state": str(tmp_path / "st" / "state.json"),
        "audit": str(tmp_path / "logs" / "audit.jsonl"),
        "out": str(tmp_path / "consumer.jsonl"),
        "names": keys("n", 7),
        "devs": keys("d", 4),
        "seed": "crash",
        "k": 3,
        "ticks": 30,
        **extra,
    }


@pytest.mark.parametrize("mode", ["before_commit", "torn_temp", "after_commit", "after_audit"])
def test_crash_at_each_step_of_an_advance_never_repeats_or_loses_a_pair(tmp_path: Path, mode: str) -> None:
    rng = random.Random(mode)
    crashes = 0
    cfg = _crash_cfg(tmp_path)
    for attempt in range(20):
        crash = {"crash": mode, "crash_at": rng.randint(1, 6)} if attempt < 8 else {}
        proc = _run_worker(tmp_path, {**cfg, **crash})
        if proc.returncode == 0:
            break
        assert proc.returncode in (70, 71, 72, 73), proc.stderr
        crashes += 1
    else:
        pytest.fail("worker never finished")
    assert crashes >= 3
    _assert_exactly_once(tmp_path, cfg)
    # crashed temp files are cleaned by later commits, never left as the state
    assert not list((tmp_path / "st").glob(".state.json.*.tmp"))


def test_sigkill_at_random_moments_never_repeats_or_loses_a_pair(tmp_path: Path) -> None:
    rng = random.Random(42)
    cfg = _crash_cfg(tmp_path, ticks=400, k=2, fsync=True)
    out = Path(cfg["out"])
    kills = 0
    for _attempt in range(60):
        proc = _run_worker(tmp_path, cfg, wait=False)
        if kills < 6:
            # kill mid-run, after some progress, at a random instant inside an advance
            target = (len(out.read_bytes().splitlines()) if out.exists() else 0) + rng.randint(5, 60)
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if out.exists() and len(out.read_bytes().splitlines()) >= target:
                    break
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.003))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
    else:
        pytest.fail("worker never finished")
    assert kills == 6
    _assert_exactly_once(tmp_path, cfg)


@pytest.mark.slow
def test_two_processes_advancing_concurrently_hand_out_distinct_pairs(tmp_path: Path) -> None:
    names, devs = keys("n", 60), keys("d", 40)  # 2,400 pairs: one cycle holds all 2,000
    go = tmp_path / "go"
    base = {
        "state": str(tmp_path / "st" / "state.json"),
        "audit": str(tmp_path / "logs" / "audit.jsonl"),
        "names": names,
        "devs": devs,
        "seed": "race",
        "k": 1,
        "ticks": 1000,
        "run_keys": False,
        "fsync": True,
        "go": str(go),
    }
    procs = [_run_worker(tmp_path, {**base, "out": str(tmp_path / f"out{i}.jsonl")}, wait=False) for i in range(2)]
    time.sleep(0.3)  # both imported and waiting
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    handed = [tuple(p) for i in range(2) for e in _consumer_log(tmp_path / f"out{i}.jsonl") for p in e["pairs"]]
    assert len(handed) == 2000 and len(set(handed)) == 2000
    order = PairOrder(names, devs, seed="race", cycle=0)
    assert set(handed) == set(order.pairs(0, 2000))
    records = read_audit(tmp_path / "logs" / "audit.jsonl")
    assert [r["seq"] for r in records] == list(range(1, 2001))
    assert len({r["pid"] for r in records}) == 2  # they really interleaved


def test_threads_of_one_process_exclude_each_other_too(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    names, devs = keys("n", 20), keys("d", 15)

    def work(_: int) -> list[tuple[str, str]]:
        store = make_store(tmp_path, names, devs)
        return [p for _ in range(40) for p in store.advance(1).pairs]

    with ThreadPoolExecutor(max_workers=4) as pool:
        handed = [p for chunk in pool.map(work, range(4)) for p in chunk]
    assert len(handed) == 160 and len(set(handed)) == 160
