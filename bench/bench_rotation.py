"""Benchmark: time and memory to compute the i-th pair of a 50,000 × 100 rotation cycle.

Every row is compared with a baseline measured in the same run: plain index arithmetic
(``divmod(i, M)`` and two tuple look-ups), i.e. the cost of a non-shuffled, non-spread
order. Timings are the best of ``--repeat`` passes without tracing; peak memory is
measured in a separate pass under ``tracemalloc`` (which slows code down), as the peak
allocated above the level before the loop, results discarded as they are produced.

    .venv/bin/python bench/bench_rotation.py --out bench/results/rotation.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_audio_dagster.core.rotation.order import KeySet, PairOrder
from hybrid_audio_dagster.core.rotation.store import RotationStore


def _best_time(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` runs of ``fn`` (which returns how many pairs it made)."""
    best, count = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def _peak_bytes(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=50_000)
    ap.add_argument("--developers", type=int, default=100)
    ap.add_argument("--samples", type=int, default=100_000, help="pairs computed per timed pass")
    ap.add_argument("--mem-samples", type=int, default=20_000, help="pairs computed in the tracemalloc pass")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000, help="k of the RotationStore.advance rows")
    ap.add_argument("--seed", default="bench")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)

    names_list = [f"name-{i:06d}" for i in range(args.names)]
    devs_list = [f"developer-{j:04d}" for j in range(args.developers)]
    t0 = time.perf_counter()
    names = KeySet(names_list, what="names")
    devs = KeySet(devs_list, what="developers")
    keyset_s = time.perf_counter() - t0
    keyset_mem = _peak_bytes(lambda: (KeySet(names_list), KeySet(devs_list)))

    t0 = time.perf_counter()
    order = PairOrder(names, devs, seed=args.seed, cycle=7)
    build_s = time.perf_counter() - t0
    build_mem = _peak_bytes(lambda: PairOrder(names, devs, seed=args.seed, cycle=7))
    length = order.length
    rng = random.Random(0)
    positions = [rng.randrange(length) for _ in range(args.samples)]
    mem_positions = positions[: args.mem_samples]
    start = length // 3
    n_tuple, d_tuple, m = names.keys, devs.keys, len(devs)

    def baseline(pos: Sequence[int]) -> Callable[[], int]:
        def run() -> int:
            for i in pos:
                a, d = divmod(i, m)
                n_tuple[a], d_tuple[d]
            return len(pos)

        return run

    def random_access(pos: Sequence[int]) -> Callable[[], int]:
        def run() -> int:
            pair_at = order.pair_at
            for i in pos:
                pair_at(i)
            return len(pos)

        return run

    def sequential(count: int) -> Callable[[], int]:
        def run() -> int:
            for _ in order.pairs(start, start + count):
                pass
            return count

        return run

    pairs_for_inverse = [order.pair_at(i) for i in positions]

    def inverse(pairs: Sequence[tuple[str, str]]) -> Callable[[], int]:
        def run() -> int:
            position_of = order.position_of
            for name, dev in pairs:
                position_of(name, dev)
            return len(pairs)

        return run

    rows: list[dict[str, object]] = []

    def measure(label: str, timed: Callable[[], int], traced: Callable[[], object], note: str = "") -> None:
        seconds, count = _best_time(timed, args.repeat)
        rows.append(
            {
                "name": label,
                "pairs": count,
                "seconds": seconds,
                "us_per_pair": seconds / count * 1e6,
                "peak_bytes": _peak_bytes(traced),
                "note": note,
            }
        )

    measure(
        "baseline: divmod + tuple index", baseline(positions), baseline(mem_positions), "unshuffled row-major order; the reference cost"
    )
    measure(
        "PairOrder.pair_at (random i)",
        random_access(positions),
        random_access(mem_positions),
        "2 Feistel permutations + diagonal arithmetic",
    )
    measure("PairOrder.pairs (sequential)", sequential(args.samples), sequential(args.mem_samples), "a preview/advance walks like this")
    measure(
        "PairOrder.position_of (inverse)",
        inverse(pairs_for_inverse),
        inverse(pairs_for_inverse[: args.mem_samples]),
        "bisect + 2 inverse permutations + CRT",
    )

    # end to end: a locked, fsync'd, audited advance on the 50,000 × 100 datasets
    with tempfile.TemporaryDirectory() as tmp:
        store = RotationStore(
            Path(tmp) / "state.json", names=names, developers=devs, seed=args.seed, audit_path=Path(tmp) / "logs" / "audit.jsonl"
        )
        t0 = time.perf_counter()
        store.advance(1)  # first commit also writes the 50,000-name membership sidecar
        first_s = time.perf_counter() - t0

        def advances(times: int) -> Callable[[], int]:
            def run() -> int:
                for _ in range(times):
                    store.advance(args.batch)
                return times * args.batch

            return run

        measure(
            f"RotationStore.advance(k={args.batch})", advances(3), advances(1), "lock + state read/write (fsync) + audit line, per pair"
        )

        def preview() -> int:
            for _ in store.preview(args.batch):
                pass
            return args.batch

        measure(f"RotationStore.preview({args.batch})", preview, preview, "shared lock + state read, no write")

    base_us = rows[0]["us_per_pair"]
    base_mem = rows[0]["peak_bytes"]
    for row in rows:
        row["ratio_vs_baseline"] = row["us_per_pair"] / base_us  # type: ignore[operator]
        row["peak_bytes_over_baseline"] = row["peak_bytes"] - base_mem  # type: ignore[operator]

    # what materialising the cycle would cost: measured on a slice, scaled to the cycle
    slice_n = 100_000
    materialised = _peak_bytes(lambda: [order.pair_at(i) for i in range(slice_n)])
    materialised_estimate = materialised * (length / slice_n)

    result = {
        "benchmark": "rotation i-th pair",
        "params": {
            "names": args.names,
            "developers": args.developers,
            "cycle_length": length,
            "samples": args.samples,
            "mem_samples": args.mem_samples,
            "repeat": args.repeat,
            "batch": args.batch,
            "seed": args.seed,
        },
        "environment": {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "setup": {
            "keyset_build_seconds": keyset_s,
            "keyset_build_peak_bytes": keyset_mem,
            "pairorder_build_seconds": build_s,
            "pairorder_build_peak_bytes": build_mem,
            "store_first_advance_seconds": first_s,
            "materialised_cycle_estimated_bytes": materialised_estimate,
        },
        "results": rows,
    }

    print(f"rotation benchmark: {args.names:,} names × {args.developers:,} developers = {length:,} pairs/cycle")
    print(f"python {result['environment']['python']} on {result['environment']['platform']}")
    header = f"{'operation':<36} {'µs/pair':>9} {'× base':>7} {'peak KiB':>9} {'Δ KiB':>8}  note"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['name']:<36} {row['us_per_pair']:>9.3f} {row['ratio_vs_baseline']:>7.1f} "
            f"{row['peak_bytes'] / 1024:>9.1f} {row['peak_bytes_over_baseline'] / 1024:>8.1f}  {row['note']}"
        )
    print()
    print(
        f"setup: KeySet build {keyset_s * 1e3:.1f} ms / {keyset_mem / 2**20:.1f} MiB (the O(N+M) input), "
        f"PairOrder build {build_s * 1e6:.0f} µs / {build_mem / 1024:.1f} KiB, "
        f"first store advance {first_s * 1e3:.1f} ms"
    )
    print(
        f"a materialised cycle would need ~{materialised_estimate / 2**20:,.0f} MiB (measured on {slice_n:,} pairs, scaled to {length:,})"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
