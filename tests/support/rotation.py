"""Helpers shared by the rotation tests: hypothesis settings, keys, the order guarantees
G1–G5 checked as stated, a store in a temp folder and a snapshot of its files."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.rotation.order import PairOrder
from hybrid_audio_dagster.core.rotation.store import RotationStore

ROOT = Path(__file__).resolve().parents[2]


def fast(max_examples: int) -> settings:
    # no deadline: these tests assert properties, never timings
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


seeds = st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.text(max_size=12))


def keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def assert_guarantees(order: PairOrder) -> None:
    """Check G1–G5 of the module docstring exactly as stated."""
    n_names, n_devs = len(order.names), len(order.developers)
    length = n_names * n_devs
    slots = [order.slots_at(i) for i in range(length)]
    # G1: every pair exactly once, and position_of inverts pair_at
    assert len(set(slots)) == length
    for i in range(0, length, max(1, length // 50)):
        assert order.position_of(*order.pair_at(i)) == i
    names_major = n_names >= n_devs
    major = [s[0] if names_major else s[1] for s in slots]
    minor = [s[1] if names_major else s[0] for s in slots]
    n, m = (n_names, n_devs) if names_major else (n_devs, n_names)
    g = math.gcd(n, m)
    lcm = n * m // g
    # G2: every window of n consecutive positions holds each major item once
    for i in range(length - n + 1):
        assert len(set(major[i : i + n])) == n, f"major window at {i}"
    # G3: aligned blocks, hence balanced usage counts at every prefix
    for k in range(length // m):
        assert len(set(minor[k * m : (k + 1) * m])) == m
    for k in range(length // n):
        assert len(set(major[k * n : (k + 1) * n])) == n
    counts_a: Counter[int] = Counter()
    counts_b: Counter[int] = Counter()
    for i, (a, b) in enumerate(slots):
        counts_a[a] += 1
        counts_b[b] += 1
        lo_a = min(counts_a[x] for x in range(n_names)) if len(counts_a) == n_names else 0
        lo_b = min(counts_b[x] for x in range(n_devs)) if len(counts_b) == n_devs else 0
        assert max(counts_a.values()) - lo_a <= 1 and max(counts_b.values()) - lo_b <= 1, f"prefix {i}"
    # G4: minor windows are distinct unless they straddle a block start b·lcm
    starts = {b * lcm for b in range(1, g)}
    for i in range(length - m + 1):
        if not any(i < s <= i + m - 1 for s in starts):
            assert len(set(minor[i : i + m])) == m, f"minor window at {i}"
    # G5: never the same major twice in a row; a repeated minor only where unavoidable
    if n >= 2:
        assert all(major[i] != major[i + 1] for i in range(length - 1))
    repeats = [i for i in range(length - 1) if minor[i] == minor[i + 1]]
    if m == 1:
        assert len(repeats) == length - 1
    elif m == 2 and n % 2 == 0:
        assert repeats == [n - 1]
    else:
        assert repeats == []


def make_store(root: Path, names, devs, scripts=(), seed: str | int = "s", **kw) -> RotationStore:
    kw.setdefault("fsync", False)  # durability on power loss is irrelevant to these properties
    return RotationStore(
        root / "state" / "state.json",
        names=names,
        developers=devs,
        scripts=scripts,
        seed=seed,
        audit_path=root / "logs" / "audit.jsonl",
        **kw,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes except lock files (an empty lock file is not state)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".lock"}


def warm_home(
    base: Path, names: list[str], developers: list[str], *, variants: bool = False, drop_templates: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """(project root, instance home) after one full batch with the offline engine: the
    starting point of the rotation's Dagster tests (made once per module)."""
    import dagster as dg

    from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
    from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
    from hybrid_audio_dagster.runner.batch import run_full_batch
    from testkit.project import make_project

    root, home = base / "project", base / "home"
    make_project(root, names, developers, variants=variants)
    for template_id in drop_templates:
        (root / "templates" / f"{template_id}.json").unlink()
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        run_full_batch(instance, {"paths": ProjectPaths(root=str(root)), "tts": OfflineTTSResource()})
    return root, home


def execute_request(defs, instance, request, run_config_extra: dict | None = None):
    """Execute what a schedule or sensor asked for, in-process, as the daemon would launch it."""
    return defs.get_job_def(request.job_name).execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config={**request.run_config, **(run_config_extra or {})},
        tags=request.tags,
        raise_on_error=False,
    )
