"""Crash safety (issue 12 item 2), on sqlite and on Postgres.

- ``kill -9`` of a real ``python -m hybrid_audio_dagster.runner.headless batch`` during the stems
  phase, then of the next batch during the messages phase, then a third batch: it starts
  without a manual step (the dead runs are failed and their pool slots freed), completes
  within a bounded time, synthesizes no stored stem again, rewrites only the messages whose
  manifest row had not reached the spool, leaves no temp file, and every message verifies.
- A pool slot held by a live run is reported, not waited on silently; the non-public
  Dagster calls behind reading and freeing slots are pinned here.
- Atomic writes and manifest spools under ``kill -9``.

Overlap is ``test_overlap_safety.py``, disk full / permission denied ``test_output_failures.py``.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.fsutil import atomic_write_bytes, host_id, remove_stale_temp_files
from hybrid_audio_dagster.core.messages.manifest import ManifestWriter, file_matches, read_manifest, read_spool, recover_spools
from hybrid_audio_dagster.defs.tags import DRIVER_TAG
from hybrid_audio_dagster.runner.recovery import (
    HOST_TAG,
    PID_TAG,
    busy_pools,
    ensure_pool_limits,
    free_pool_slots,
    pool_slot_holders,
    recover_dead_runs,
)
from testkit.postgres import write_postgres_home
from testkit.project import make_project
from tests.support.crash import (
    BATCH_S,
    DEVELOPERS,
    NAMES,
    SQLITE_YAML,
    Proc,
    assert_final_files_whole,
    billed,
    clean_env,
    headless_batch,
    kill_when,
    message_mtimes,
    open_instance,
    runs_with,
    sidecars,
    spools,
    temp_files,
    verify_all,
)


@pytest.fixture(params=["sqlite", "postgres"])
def home(request, tmp_path):
    """A DAGSTER_HOME as `make batch` uses it: deploy/dagster.yaml (sqlite, pools) or the
    production Postgres config."""
    home = tmp_path / "dagster_home"
    if request.param == "postgres":
        db = request.getfixturevalue("pg_database")
        write_postgres_home(home, db)
    else:
        home.mkdir()
        (home / "dagster.yaml").write_text(SQLITE_YAML.read_text())
    return home


# -- atomic writes and temp files (fast) -------------------------------------------------------
WRITER = textwrap.dedent("""
    import os, sys
    from hybrid_audio_dagster.core.fsutil import atomic_write_bytes
    folder = sys.argv[1]
    i = 0
    while True:
        # 8 MB in 512 chunks: a kill lands mid-file most of the time
        atomic_write_bytes(os.path.join(folder, f"f{i % 5}.bin"), [bytes([i % 251]) * 16384] * 512, fsync=False)
        i += 1
        if i == 3:
            open(os.path.join(folder, "ready"), "w").close()
""")


def test_kill_9_mid_write_leaves_no_partial_file_under_its_name(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    p = Proc([sys.executable, "-c", WRITER, str(folder)], dict(os.environ), tmp_path / "writer.log")
    kill_when(p, lambda: (folder / "ready").exists(), "the writer to write a few files", timeout_s=60)
    finals = sorted(folder.glob("f*.bin"))
    assert finals
    for f in finals:  # whole files only: the right size, one byte value throughout
        data = f.read_bytes()
        assert len(data) == 16384 * 512 and data.count(data[:1]) == len(data), f
    temps = list(folder.glob(".*.tmp"))
    assert all(f".{host_id()}-{p.proc.pid}." in t.name for t in temps), temps  # the writer is named in its temps
    removed = remove_stale_temp_files(folder)
    assert sorted(removed) == sorted(temps)
    assert not list(folder.glob(".*.tmp"))


def test_stale_temp_cleanup_keeps_live_writers_and_other_hosts(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    me, here = os.getpid(), host_id()
    files = {
        "dead": tmp_path / f".a.wav.{here}-{dead}.abcd1234.tmp",
        "dead_manifest": tmp_path / "x" / f".manifest.parquet.{here}-{dead}.tmp",
        "live": tmp_path / f".b.wav.{here}-{me}.abcd1234.tmp",
        "other_host": tmp_path / f".c.wav.{'0' * 8 if here != '0' * 8 else '1' * 8}-{dead}.abcd1234.tmp",
        "legacy_old": tmp_path / ".d.wav.abcd1234.tmp",
        "legacy_new": tmp_path / ".e.wav.abcd1234.tmp",
        "spool": tmp_path / "x" / f".manifest.parquet.{here}-{dead}-0.rows",  # recovered by the build, not removed here
        "message": tmp_path / "f.wav",
    }
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(files["legacy_old"], (old, old))
    removed = set(remove_stale_temp_files(tmp_path))
    assert removed == {files["dead"], files["dead_manifest"], files["legacy_old"]}


def test_write_errors_name_the_path_and_leave_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.wav"
    target.write_bytes(b"old")

    def full(fd, bufs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"new" * 1000)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old" and not list(tmp_path.glob(".*.tmp"))


# -- manifest spools ----------------------------------------------------------------------------
SPOOLER = textwrap.dedent("""
    import os, sys, time
    from hybrid_audio_dagster.core.messages.manifest import ManifestWriter
    root, n = sys.argv[1], int(sys.argv[2])
    w = ManifestWriter(os.path.join(root, "t", "d", "manifest.parquet"), flush_rows=4, flush_s=60)
    for i in range(n):
        p = os.path.join(root, "t", "d", f"n{i}.wav")
        with open(p, "wb") as f:
            f.write(b"RIFF" + bytes(i + 10))
        st = os.stat(p)
        w.add({"name_key": f"n{i}", "name": f"N{i}", "path": f"t/d/n{i}.wav", "frames": 1, "sample_rate": 8000,
               "duration_s": 0.1, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": "0" * 64,
               "input_signature": "s", "template_signature": "t", "timeline": "{}", "gs_uri": None})
    open(os.path.join(root, "done"), "w").close()
    time.sleep(60)
""")


def test_a_dead_writers_spool_is_recovered_row_by_row(tmp_path):
    p = Proc([sys.executable, "-c", SPOOLER, str(tmp_path), "10"], dict(os.environ), tmp_path / "spooler.log")
    kill_when(p, lambda: (tmp_path / "done").exists(), "the spooler to add its rows", timeout_s=60)
    manifest = tmp_path / "t" / "d" / "manifest.parquet"
    [spool] = list(manifest.parent.glob(".manifest.parquet.*.rows"))
    assert [r["name_key"] for r in read_spool(spool)] == [f"n{i}" for i in range(8)]  # 2 full chunks of 4 reached the OS
    # a message rewritten since its row was spooled is not taken back, nor is a truncated chunk
    (manifest.parent / "n3.wav").write_bytes(b"RIFF" + bytes(99))
    with open(spool, "ab") as fh:
        fh.write(b"\x80\x05garbage")
    found = recover_spools(manifest, tmp_path)
    assert sorted(found.rows) == sorted(f"n{i}" for i in range(8) if i != 3)
    assert found.spools == [spool] and found.stale_rows == 1
    assert all(file_matches(tmp_path, r) for r in found.rows.values())


def test_a_failed_commit_keeps_the_old_manifest_and_the_spool(tmp_path, monkeypatch):
    manifest = tmp_path / "manifest.parquet"
    w = ManifestWriter(manifest)
    w.commit()  # an empty manifest: the "old" one
    before = manifest.read_bytes()
    w = ManifestWriter(manifest)
    (tmp_path / "a.wav").write_bytes(b"x")
    st = os.stat(tmp_path / "a.wav")
    w.add(
        {
            "name_key": "a",
            "name": "A",
            "path": "a.wav",
            "frames": 1,
            "sample_rate": 8000,
            "duration_s": 0.1,
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": "0" * 64,
            "input_signature": "s",
            "template_signature": "t",
            "timeline": "{}",
        }
    )
    real = os.replace

    def denied(src, dst, *a, **k):
        if str(dst) == str(manifest):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError) as info:
        w.commit()
    assert str(manifest) in str(info.value)
    assert manifest.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    assert [r["name_key"] for r in read_spool(w.spool_path)] == ["a"]  # progress kept for the next writer
    monkeypatch.setattr(os, "replace", real)
    assert list(recover_spools(manifest, tmp_path).rows) == ["a"]


# -- pool slots: dead runs freed, live holders reported -------------------------------------------
HOLDER = textwrap.dedent("""
    import os, sys, time
    import dagster as dg
    from hybrid_audio_dagster.defs.tags import DRIVER_TAG
    from hybrid_audio_dagster.runner.recovery import owner_tags

    hold_s = float(sys.argv[2])

    @dg.asset(pool="tts")
    def slot_holder() -> None:
        open(sys.argv[1], "w").close()
        time.sleep(hold_s)

    job = dg.Definitions(assets=[slot_holder], jobs=[dg.define_asset_job("holder_job", [slot_holder])]).resolve_job_def("holder_job")
    job.execute_in_process(instance=dg.DagsterInstance.get(), tags={DRIVER_TAG: "cli", **owner_tags()})
""")


@dg.asset(pool="tts")
def slot_waiter() -> None:
    pass


def start_holder(home: Path, tmp_path: Path, hold_s: float) -> tuple[Proc, Path]:
    marker = tmp_path / f"holding-{hold_s}"
    env = clean_env(home, tmp_path / "project")
    p = Proc([sys.executable, "-c", HOLDER, str(marker), str(hold_s)], env, tmp_path / f"holder-{hold_s}.log")
    return p, marker


@pytest.mark.timeout(240)
def test_a_killed_batch_run_is_failed_and_its_slot_freed_a_live_one_is_reported(home, tmp_path, caplog):
    """The non-public slot calls (pool_slot_holders, free_pool_slots, ensure_pool_limits)
    pinned on both storages; a run waiting on a live holder says who it is; after kill -9
    of the holder, recover_dead_runs (only dead cli runs of this host) lets the waiter run."""
    from hybrid_audio_dagster.runner import batch as batch_mod

    instance = open_instance(home)
    ensure_pool_limits(instance)  # a fresh database: the default limits stored up front
    ensure_pool_limits(instance)  # and again: nothing to do
    assert {"tts", "messages"} <= {p.name for p in instance.event_log_storage.get_pool_limits()}
    holder, marker = start_holder(home, tmp_path, 600)
    waiter: list = []
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert holder.proc.poll() is None and time.monotonic() < deadline, holder.output()[-3000:]
            time.sleep(0.05)
        [run] = runs_with(instance, **{DRIVER_TAG: "cli"})
        assert run.tags[HOST_TAG] and run.tags[PID_TAG] == str(holder.proc.pid)
        limit, holders, _ = pool_slot_holders(instance, "tts")
        assert limit == 1 and holders == [run.run_id]
        [line] = busy_pools(instance, ["tts"])
        assert run.run_id in line and f"pid {holder.proc.pid}" in line
        assert recover_dead_runs(instance).runs == []  # alive: left alone
        assert pool_slot_holders(instance, "tts")[1] == [run.run_id]

        # a batch stage in the same pool waits, and says for whom (not silently)
        caplog.set_level(logging.WARNING, logger="hybrid_audio_dagster.runner.batch")
        defs = dg.Definitions(assets=[slot_waiter], jobs=[dg.define_asset_job("waiter_job", [slot_waiter])])
        request = dg.RunRequest(job_name="waiter_job", tags={"hybrid_audio/stage": "stems"})
        t = threading.Thread(target=lambda: waiter.append(batch_mod._execute(defs, instance, request, quiet=True)), daemon=True)
        t.start()
        deadline = time.monotonic() + 60
        while "waiting for a pool slot" not in caplog.text:
            assert time.monotonic() < deadline and t.is_alive(), caplog.text
            time.sleep(0.1)
        assert "pool 'tts'" in caplog.text and f"pid {holder.proc.pid}" in caplog.text, caplog.text
        assert not waiter

        # kill -9: the run stays STARTED holding the slot (the bug) until a batch recovers it
        os.killpg(holder.proc.pid, signal.SIGKILL)
        holder.kill()
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        assert pool_slot_holders(instance, "tts")[1] == [run.run_id]
        t0 = time.monotonic()
        done = recover_dead_runs(instance)
        recovery_s = time.monotonic() - t0
        assert done.runs == [run.run_id] and done.slots_freed == 1
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert recover_dead_runs(instance).runs == []  # idempotent
        assert free_pool_slots(instance, run.run_id) == 0
        # the waiting stage gets the slot and completes: Dagster re-checks a blocked claim at
        # most every 15 s; the margin is for a loaded 2-core machine
        t.join(150)
        assert waiter and waiter[0].success, (
            f"the waiting run did not complete within 150 s of the recovery; tts pool (limit, holders, pending): "
            f"{pool_slot_holders(instance, 'tts')}"
        )
        assert pool_slot_holders(instance, "tts")[1] == []
        print(f"recover_dead_runs: {recovery_s * 1000:.0f} ms; waiter done {time.monotonic() - t0:.1f}s after it")
    finally:
        holder.kill()
        instance.dispose()


# -- kill -9 of the headless batch at several points ----------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_kill_9_during_stems_then_during_messages_then_the_next_batch_completes(home, tmp_path, request):
    project = tmp_path / "project"
    paths = make_project(project, NAMES, DEVELOPERS)
    timings: dict[str, float] = {}

    # 1. kill -9 during the stems phase, once a few stems are stored
    b1 = headless_batch(home, project, tmp_path / "b1.log")
    timings["kill_1_s"] = kill_when(b1, lambda: len(sidecars(paths)) >= 5, "5 stored stems")
    stored_1, billed_1 = len(sidecars(paths)), billed(paths)
    assert_final_files_whole(paths)
    with open_instance(home) as instance:
        [stems_run] = [r for r in runs_with(instance, **{DRIVER_TAG: "cli", "hybrid_audio/stage": "stems"})]
        assert stems_run.status == dg.DagsterRunStatus.STARTED and stems_run.tags[PID_TAG] == str(b1.proc.pid)
        assert pool_slot_holders(instance, "tts")[1] == [stems_run.run_id]  # what used to hang the next batch

    # 2. the next batch starts without a manual step; kill -9 it in the messages phase, once
    #    its manifest progress reached a spool
    b2 = headless_batch(home, project, tmp_path / "b2.log")
    timings["kill_2_s"] = kill_when(
        b2, lambda: any(os.path.getsize(s) > 0 for s in spools(paths) if os.path.exists(s)), "a flushed manifest spool"
    )
    assert_final_files_whole(paths)
    assert "recovered after a crash: 1 dead run(s)" in b2.output()
    with open_instance(home) as instance:
        assert instance.get_run_by_id(stems_run.run_id).status == dg.DagsterRunStatus.FAILURE
        [msg_run] = [r for r in runs_with(instance, **{DRIVER_TAG: "cli", "hybrid_audio/stage": "messages"})]
        assert msg_run.status == dg.DagsterRunStatus.STARTED
        assert pool_slot_holders(instance, "messages")[1] == [msg_run.run_id]
    on_disk = message_mtimes(paths)
    durable = {r["path"] for s in spools(paths) for r in read_spool(s) if file_matches(paths.output, r)}
    assert durable and durable <= on_disk.keys()
    assert not any(read_manifest(m) for m in glob.glob(str(paths.output / "**" / "manifest.parquet"), recursive=True))

    # 3. the third batch completes, bounded, redoing only unfinished work
    t0 = time.monotonic()
    b3 = headless_batch(home, project, tmp_path / "b3.log", "--json")
    rc = b3.wait(BATCH_S)
    timings["batch_3_s"] = time.monotonic() - t0
    out = b3.output()
    assert rc == 0, out[-3000:]
    summary = json.loads(out[out.index("{") :])
    total = len(NAMES) * len(DEVELOPERS) * 2
    assert summary["recovered_runs"] == [msg_run.run_id] and summary["slots_freed"] == 1
    assert summary["tts_calls"] == 0 and summary["stem_runs"] == 0
    assert summary["messages_written"] == total - len(durable)
    assert summary["messages_skipped"] == len(durable)
    after = message_mtimes(paths)
    rewritten = {p for p, m in on_disk.items() if after[p] != m}
    assert rewritten == on_disk.keys() - durable  # only messages whose row had not reached a spool
    assert len(after) == total
    # every stem billed once, but for syntheses whose sidecar the first kill cut off
    final = len(sidecars(paths))
    # (at most one per stems worker thread: 2 x the engine's max_concurrency of 2)
    assert billed(paths) == final + (billed_1 - stored_1) and 0 <= billed_1 - stored_1 <= 4
    assert not temp_files(paths), temp_files(paths)
    verify_all(paths, NAMES)
    with open_instance(home) as instance:
        assert instance.get_run_by_id(msg_run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not pool_slot_holders(instance, "tts")[1] and not pool_slot_holders(instance, "messages")[1]
    timings["recovery_s"] = summary["recovery_seconds"]
    backend = request.node.callspec.params["home"]
    print(
        f"[{backend}] recovered {len(durable)} of {len(on_disk)} messages on disk; rewrote {len(rewritten)}; timings",
        {k: round(v, 2) for k, v in timings.items()},
    )
