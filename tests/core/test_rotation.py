"""The rotation engine's pure layer: order guarantees, determinism across processes,
constant memory, refused datasets."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tracemalloc
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_audio_dagster.core.rotation.errors import DatasetError
from hybrid_audio_dagster.core.rotation.order import FeistelPermutation, KeySet, PairOrder, StreamOrder
from hybrid_audio_dagster.core.rotation.store import RotationStore
from tests.support.rotation import ROOT, assert_guarantees, fast, keys, seeds

# ------------------------------------------------------------------ pure layer


@fast(120)
@given(n=st.integers(0, 3000), rk=st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8))
def test_feistel_is_a_bijection_with_inverse(n: int, rk: list[int]) -> None:
    p = FeistelPermutation(n, rk)
    image = [p(x) for x in range(n)]
    assert sorted(image) == list(range(n))
    assert all(p.inverse(y) == x for x, y in enumerate(image))
    with pytest.raises(IndexError):
        p(n)


@fast(150)
@given(
    n_names=st.integers(1, 24),
    n_devs=st.integers(1, 24),
    seed=seeds,
    cycle=st.integers(0, 10**9),
    avoid=st.one_of(st.none(), st.tuples(st.integers(0, 30), st.integers(0, 30))),
)
def test_full_cycle_covers_every_pair_once_and_spreads_evenly(n_names, n_devs, seed, cycle, avoid) -> None:
    names, devs = keys("n", n_names), keys("d", n_devs)
    avoid_pair = (f"n{avoid[0]:03d}", f"d{avoid[1]:03d}") if avoid else None
    order = PairOrder(names, devs, seed=seed, cycle=cycle, avoid=avoid_pair)
    pairs = list(order)
    assert sorted(pairs) == sorted(product(names, devs))
    assert_guarantees(order)
    if avoid_pair is not None:  # G6
        first = order.pair_at(0)
        if n_names >= 2:
            assert first[0] != avoid_pair[0]
        if n_devs >= 2:
            assert first[1] != avoid_pair[1]


@pytest.mark.parametrize(
    "n_names,n_devs",
    [(1, 1), (1, 9), (9, 1), (2, 2), (4, 2), (2, 4), (3, 2), (6, 4), (4, 6), (12, 8), (5, 5), (9, 6), (64, 48), (97, 3)],
)
def test_guarantees_on_edge_shapes(n_names: int, n_devs: int) -> None:
    assert_guarantees(PairOrder(keys("n", n_names), keys("d", n_devs), seed="edge", cycle=1))


def test_names_major_window_when_names_outnumber_developers() -> None:
    # the wording: with N >= M, every window of N consecutive pairs has each name once
    order = PairOrder(keys("n", 30), keys("d", 12), seed=5, cycle=0)
    names = [p[0] for p in order]
    assert all(len(set(names[i : i + 30])) == 30 for i in range(len(names) - 29))


@fast(40)
@given(n_names=st.integers(1, 12), n_devs=st.integers(1, 12), seed=seeds, data=st.data())
def test_order_ignores_input_order_and_duplicates(n_names, n_devs, seed, data) -> None:
    names, devs = keys("n", n_names), keys("d", n_devs)
    shuffled = data.draw(st.permutations(names + names[:2]))
    assert list(PairOrder(names, devs, seed=seed, cycle=3)) == list(PairOrder(shuffled, devs[::-1], seed=seed, cycle=3))


def test_seed_and_cycle_change_the_order() -> None:
    names, devs = keys("n", 10), keys("d", 10)
    base = list(PairOrder(names, devs, seed="a", cycle=0))
    assert base != list(PairOrder(names, devs, seed="b", cycle=0))
    assert base != list(PairOrder(names, devs, seed="a", cycle=1))
    assert base == list(PairOrder(names, devs, seed="a", cycle=0))
    assert list(PairOrder(names, devs, seed=7, cycle=0)) == list(PairOrder(names, devs, seed="7", cycle=0))


_DETERMINISM_CHILD = """
import hashlib, json, sys
from hybrid_audio_dagster.core.rotation.order import PairOrder, StreamOrder
out = []
for n, m, seed, cycle in json.loads(sys.argv[1]):
    o = PairOrder([f"n{i}" for i in range(n)], [f"d{j}" for j in range(m)], seed=seed, cycle=cycle)
    s = StreamOrder([f"s{i}" for i in range(n)], seed=seed, cycle=cycle, label="scripts")
    out.append(hashlib.sha256(json.dumps([list(o), list(s)]).encode()).hexdigest())
print(json.dumps(out))
"""


def _order_digests(configs: list[tuple[int, int, str | int, int]]) -> list[str]:
    out = []
    for n, m, seed, cycle in configs:
        o = PairOrder([f"n{i}" for i in range(n)], [f"d{j}" for j in range(m)], seed=seed, cycle=cycle)
        s = StreamOrder([f"s{i}" for i in range(n)], seed=seed, cycle=cycle, label="scripts")
        # json round trip so tuples compare like the child's lists
        out.append(hashlib.sha256(json.dumps([list(o), list(s)]).encode()).hexdigest())
    return out


@fast(4)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40), seeds, st.integers(0, 10**6)), min_size=1, max_size=6))
def test_same_seed_same_order_in_another_process(configs) -> None:
    env = {**os.environ, "PYTHONHASHSEED": str(random.randrange(1, 2**31))}
    proc = subprocess.run(
        [sys.executable, "-c", _DETERMINISM_CHILD, json.dumps(configs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    assert json.loads(proc.stdout) == _order_digests(configs)


def test_large_cycle_is_computed_pointwise_in_constant_memory() -> None:
    names, devs = KeySet(keys("name", 50_000), what="names"), KeySet(keys("dev", 100), what="developers")
    tracemalloc.start()
    try:
        order = PairOrder(names, devs, seed="bench", cycle=12)
        _, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rng = random.Random(1)
        positions = [rng.randrange(order.length) for _ in range(3000)]
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        for i in positions:
            assert order.position_of(*order.pair_at(i)) == i
        _, walk_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert order.length == 5_000_000
    # a materialised cycle would be hundreds of MB; point-wise evaluation stays tiny
    assert build_peak < 64 * 1024
    assert walk_peak - base < 64 * 1024
    # spot-check G2 on a window straddling an arbitrary offset
    window = [order.pair_at(i)[0] for i in range(1_234_567, 1_234_567 + 50_000)]
    assert len(set(window)) == 50_000


@fast(60)
@given(n=st.integers(1, 40), seed=seeds, cycle=st.integers(0, 1000), avoid=st.integers(0, 45))
def test_stream_order_round_robin(n, seed, cycle, avoid) -> None:
    items = keys("s", n)
    avoid_key = f"s{avoid:03d}"
    order = StreamOrder(items, seed=seed, cycle=cycle, label="scripts", avoid=avoid_key)
    seq = list(order)
    assert sorted(seq) == items
    assert all(order.position_of(k) == j for j, k in enumerate(seq))
    if n >= 2:
        assert seq[0] != avoid_key


def test_invalid_datasets_are_refused_with_a_named_problem() -> None:
    with pytest.raises(DatasetError, match="names: expected an iterable"):
        KeySet("john", what="names")
    with pytest.raises(DatasetError, match="developers: invalid key ''"):
        KeySet(["hilton", ""], what="developers")
    with pytest.raises(DatasetError, match="invalid key 3"):
        KeySet(["a", 3])  # type: ignore[list-item]
    with pytest.raises(DatasetError, match="at least one name"):
        PairOrder([], ["x"], seed=0, cycle=0)
    with pytest.raises(DatasetError, match="names: the dataset is empty"):
        RotationStore("unused/state.json", names=[], developers=["x"])
    with pytest.raises(TypeError, match="seed must be"):
        PairOrder(["a"], ["x"], seed=1.5, cycle=0)  # type: ignore[arg-type]
