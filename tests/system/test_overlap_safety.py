"""Overlap safety (issue 12 item 3): two batches at once in two processes on one home, with
a counting TTS engine, on sqlite without any pool limit (and an inbox pipeline at the same
time) and on Postgres: each stem is billed once, no file is corrupt, every manifest is whole
and fingerprinted, and a third batch is a whole-partition no-op."""

from __future__ import annotations

import glob
import json
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, read_fingerprint
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.metadata_index import latest_metadata
from hybrid_audio_dagster.defs.partitions import message_partition_key
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.postgres import write_postgres_home
from testkit.project import make_project
from tests.support.campaign import CountingTTS, calls
from tests.support.crash import (
    BATCH_S,
    DEVELOPERS,
    NAMES,
    NO_POOLS_YAML,
    Proc,
    assert_final_files_whole,
    clean_env,
    message_mtimes,
    open_instance,
    sidecars,
    temp_files,
    verify_all,
)

# real processes (batches, a daemon, Postgres): make test-slow, not make test
pytestmark = pytest.mark.slow

# -- two batches at once ----------------------------------------------------------------------------
DRIVER = textwrap.dedent("""
    import json, sys
    import dagster as dg
    from hybrid_audio_dagster.runner.batch import run_full_batch
    from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
    from tests.support.campaign import CountingTTS

    root, log = sys.argv[1], sys.argv[2]
    with dg.DagsterInstance.get() as instance:
        s = run_full_batch(instance, resources={"paths": ProjectPaths(root=root), "tts": CountingTTS(log_path=log)})
    print(json.dumps(s.to_dict()))
""")


INBOX = textwrap.dedent("""
    import sys
    import dagster as dg
    from hybrid_audio_dagster.defs.datasets.sensors import InboxSettings, evaluate_inbox
    from hybrid_audio_dagster.definitions import build_defs
    from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
    from tests.support.campaign import CountingTTS, drive_pipelines
    from testkit.project import write_csv

    root, log, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    paths = ProjectPaths(root=root)
    defs = build_defs({"paths": paths, "tts": CountingTTS(log_path=log)})
    settings = InboxSettings(min_age_s=0, max_bytes=20_000)
    write_csv(paths.inbox / "names_upload.csv", "name", names)
    with dg.DagsterInstance.get() as instance:
        first = evaluate_inbox(paths, None, settings)
        tick = evaluate_inbox(paths, first.cursor, settings)
        for req in tick.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        results = drive_pipelines(defs, instance, tick.run_requests)
    assert results and all(r.success for r in results), [r.run_id for r in results if not r.success]
    print("inbox runs", len(results))
""")


@pytest.mark.timeout(420)
@pytest.mark.parametrize("backend", ["sqlite-no-pools", "postgres"])
def test_two_batches_at_once_bill_each_stem_once_and_keep_manifests_whole(backend, tmp_path, request):
    """Two batches at once; on sqlite (no pool limits at all) an inbox upload is ingested
    through its pipeline (ingest → stems → messages runs) at the same time too."""
    home = tmp_path / "dagster_home"
    if backend == "postgres":
        write_postgres_home(home, request.getfixturevalue("pg_database"))
    else:  # no pool limits at all: only the per-signature claims and per-partition locks order them
        home.mkdir()
        (home / "dagster.yaml").write_text(NO_POOLS_YAML)
    names = NAMES[:12]
    project = tmp_path / "project"
    paths = make_project(project, names, DEVELOPERS[:2])
    log = tmp_path / "tts_calls.log"
    env = clean_env(home, project)
    with open_instance(home) as instance:  # an existing home (Dagster's sqlite schema set-up is not itself multi-process safe)
        instance.get_runs(limit=1)
    t0 = time.monotonic()
    procs = [Proc([sys.executable, "-c", DRIVER, str(project), str(log)], env, tmp_path / f"batch{i}.log") for i in range(2)]
    uploaded = NAMES[30:34] if backend.startswith("sqlite") else []
    if uploaded:
        procs.append(Proc([sys.executable, "-c", INBOX, str(project), str(log), ",".join(uploaded)], env, tmp_path / "inbox.log"))
    try:
        rcs = [p.wait(BATCH_S) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.proc.poll() is None else None
    elapsed = time.monotonic() - t0
    outs = [p.output() for p in procs]
    assert rcs == [0] * len(procs), "\n".join(o[-3000:] for o in outs)
    summaries = [json.loads(next(line for line in reversed(o.splitlines()) if line.startswith("{"))) for o in outs[:2]]
    texts = calls(log)
    # no stem billed twice across the two processes: one call per distinct stored stem
    assert len(texts) == len(set(texts)) == len(sidecars(paths)), [t for t in texts if texts.count(t) > 1]
    # the batches bill what they synthesized; the inbox pipeline bills what it claimed first
    billed = sum(s["tts_calls"] for s in summaries)
    assert billed == len(texts) if not uploaded else billed <= len(texts)
    wavs = glob.glob(str(paths.stems / "**" / "*.wav"), recursive=True)
    assert len(wavs) == len(texts)  # one file per signature: nobody's stem was replaced
    assert not temp_files(paths)
    assert_final_files_whole(paths)
    if not uploaded:
        # consistent manifests: each partition's messages written once in all, every row verifies
        total = len(names) * 2 * 2
        assert sum(s["messages_written"] for s in summaries) == total, summaries
        assert sum(s["messages_skipped"] for s in summaries) == total  # the later builder found them all done
        verify_all(paths, names)
        # the fingerprints the overlapping batches left agree with the files: a third batch
        # skips every partition whole, with no TTS call and no file rewritten
        fingerprints = [read_fingerprint(m) for m in paths.output.rglob(MANIFEST_NAME)]
        assert len(fingerprints) == 2 * 2 and all(fp and rows == len(names) for fp, rows in fingerprints), fingerprints
        before = message_mtimes(paths)
        with open_instance(home) as instance:
            again = run_full_batch(instance, resources={"paths": paths, "tts": CountingTTS(log_path=str(log))})
            keys = [
                message_partition_key(t, d)
                for t in instance.get_dynamic_partitions("templates")
                for d in instance.get_dynamic_partitions("developers")
            ]
            recorded = latest_metadata(instance, dg.AssetKey("messages"), keys)
        assert (again.messages_written, again.tts_calls, again.messages_skipped) == (0, 0, total)
        assert len(recorded) == 2 * 2 and all(m["unchanged_partition"] is True for m in recorded.values()), recorded
        assert message_mtimes(paths) == before
    else:
        # every manifest is whole and verifies (a batch that planned before the upload landed
        # writes the manifest of its own snapshot); the next batch completes the picture with
        # no TTS call and rewrites no file of the batches' names
        for tdir in paths.output.iterdir():
            for ddir in tdir.iterdir():
                assert not verify_partition(paths, tdir.name, ddir.name)[1]
        before = message_mtimes(paths)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            last = run_full_batch(instance, resources={"paths": paths, "tts": CountingTTS(log_path=str(log))})
        assert last.tts_calls == 0 and len(calls(log)) == len(texts)
        after = message_mtimes(paths)
        assert all(after[p] == m for p, m in before.items() if Path(p).stem not in {n.lower() for n in uploaded})
        verify_all(paths, names + uploaded)
    print(f"[{backend}] concurrent: {len(procs)} processes in {elapsed:.1f}s, {len(texts)} TTS calls")
