"""``kill -9`` in the middle of a suppression batch (issue 23): a real ``python -m
hybrid_audio_dagster.runner.headless batch`` is killed as soon as the first partition's
manifest is rewritten. No partition is half-retired: each manifest lists every suppressed
person it held or none of them (one atomic rewrite per partition), and the next batch, with
no manual step, finishes the job with no TTS call, leaving everyone else's messages as they
were and every message verifying. On sqlite and on the production Postgres config.

Two batches at once after a suppression change: together they retire every suppressed
person's messages once, bill nothing, and leave everyone else's files untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_audio_dagster.core.messages.manifest import read_manifest
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from testkit.postgres import write_postgres_home
from testkit.project import make_project, write_csv
from tests.support.crash import (
    BATCH_S,
    SQLITE_YAML,
    assert_final_files_whole,
    billed,
    headless_batch,
    kill_when,
    message_mtimes,
    temp_files,
    verify_all,
)

# real processes (batches, a daemon, Postgres): make test-slow, not make test
pytestmark = pytest.mark.slow

NAMES = [f"Name{chr(65 + i)}x" for i in range(16)]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations", "Marriott", "Bluegreen"]
SUPPRESSED = NAMES[::2]  # half of them


def manifests(paths: ProjectPaths) -> dict[Path, int]:
    return {m: m.stat().st_mtime_ns for m in Path(paths.output).rglob("manifest.parquet")}


KEYS = {n.lower() for n in NAMES}
GONE = {n.lower() for n in SUPPRESSED}


def first_batch(tmp_path: Path, backend: str, request) -> tuple[Path, Path, ProjectPaths]:
    """A home on ``backend``, the project, and its first batch done: (home, project, paths)."""
    home = tmp_path / "home"
    if backend == "postgres":
        write_postgres_home(home, request.getfixturevalue("pg_database"))
    else:
        home.mkdir()
        (home / "dagster.yaml").write_text(SQLITE_YAML.read_text())
    project = tmp_path / "project"
    paths = make_project(project, NAMES, DEVELOPERS)
    first = headless_batch(home, project, tmp_path / "b1.log")
    assert first.wait(BATCH_S) == 0, first.output()[-3000:]
    return home, project, paths


def assert_suppressed_retired_and_the_rest_untouched(paths: ProjectPaths, before: dict, billed_before: int) -> None:
    assert billed(paths) == billed_before  # nobody's stems were made again
    assert message_mtimes(paths) == {p: m for p, m in before.items() if Path(p).stem not in GONE}
    for manifest in manifests(paths):
        assert {r["name_key"] for r in read_manifest(manifest)} == KEYS - GONE
    assert not [p for p in Path(paths.output).rglob("*.png") if any(f"-{k}-" in p.name for k in GONE)]
    assert not temp_files(paths)
    assert_final_files_whole(paths)
    verify_all(paths, [n for n in NAMES if n not in SUPPRESSED])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_mid_suppression_leaves_no_half_retired_partition(backend, tmp_path, request):
    home, project, paths = first_batch(tmp_path, backend, request)
    before, billed_before = message_mtimes(paths), billed(paths)
    assert len(before) == len(NAMES) * len(DEVELOPERS) * 2
    seen = manifests(paths)

    write_csv(Path(paths.data) / "suppression.csv", "name", SUPPRESSED)
    second = headless_batch(home, project, tmp_path / "b2.log")
    kill_when(second, lambda: manifests(paths) != seen, "the first partition retired")

    # right after the kill: each partition lists all of its suppressed people or none of them
    retired = 0
    for manifest in manifests(paths):
        rows = {r["name_key"] for r in read_manifest(manifest)}
        held = rows & GONE
        assert held in (set(), GONE), (manifest, sorted(held))
        assert rows - GONE == KEYS - GONE  # nobody else lost a row
        retired += not held
    assert retired >= 1
    assert_final_files_whole(paths)

    # the next batch finishes it without a manual step and without a TTS call
    third = headless_batch(home, project, tmp_path / "b3.log")
    assert third.wait(BATCH_S) == 0, third.output()[-3000:]
    assert_suppressed_retired_and_the_rest_untouched(paths, before, billed_before)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_batches_at_once_retire_the_suppressed_once(backend, tmp_path, request):
    home, project, paths = first_batch(tmp_path, backend, request)
    before, billed_before = message_mtimes(paths), billed(paths)

    write_csv(Path(paths.data) / "suppression.csv", "name", SUPPRESSED)
    batches = [headless_batch(home, project, tmp_path / f"b{i}.log") for i in (2, 3)]
    for batch in batches:
        rc = batch.wait(BATCH_S)
        assert rc == 0, batch.output()[-3000:]
    assert_suppressed_retired_and_the_rest_untouched(paths, before, billed_before)
