"""The scheduled full batch on a real `dagster dev` (webserver + daemon) on loopback, with
Cartesia spoken to over HTTP (the loopback server), then the headless batch on the same home;
afterwards no byte anywhere — run storage, compute logs, logs/, stems, outputs, manifests —
holds the API key."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from testkit.cartesia_server import FakeCartesia
from testkit.project import make_project
from testkit.servers import (
    loaded_locations,
    run_tag,
    start_dagster_dev,
    start_schedule_with_due_tick,
    stop_schedule,
    wait_for_pipeline,
    wait_until,
)

# real processes (batches, a daemon, Postgres): make test-slow, not make test
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_car_SECRET_canary_7f3a9c2e1b"
ASSET_JOBS = {"datasets_job", "name_stems_job", "developer_stems_job", "script_stems_job", "messages_job"}


def _secret_hits(folder: Path, needle: bytes) -> list[str]:
    """Every place under ``folder`` holding ``needle``: raw bytes, zlib-compressed blobs,
    every sqlite cell, every parquet value."""
    hits: list[str] = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if needle in data:
            hits.append(str(path))
            continue
        if data.startswith(b"SQLite format 3"):
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                for (table,) in con.execute("select name from sqlite_master where type='table'"):
                    for row in con.execute(f'select * from "{table}"'):
                        for cell in row:
                            blob = cell.encode() if isinstance(cell, str) else cell
                            if isinstance(blob, bytes):
                                try:
                                    blob = blob + zlib.decompress(blob)
                                except zlib.error:
                                    pass
                                if needle in blob:
                                    hits.append(f"{path}:{table}")
            finally:
                con.close()
        elif path.suffix == ".parquet":
            if needle.decode() in str(pq.read_table(path).to_pylist()):
                hits.append(str(path))
        else:
            try:
                if needle in zlib.decompress(data):
                    hits.append(f"{path} (zlib)")
            except zlib.error:
                pass
    return hits


def test_scheduled_batch_on_the_real_daemon_then_the_headless_batch_store_no_secret(tmp_path):
    home, root = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    make_project(root, ["John", "Maria", "Zoë"], ["Wyndham", "Hilton Grand Vacations"])  # the templates without variants

    with FakeCartesia(KEY) as api:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "HYBRID_AUDIO_ROOT": str(root),
            "TTS_ENGINE": "cartesia",
            "CARTESIA_API_KEY": KEY,
            "CARTESIA_BASE_URL": api.base_url,
            "HYBRID_AUDIO_PIPELINE_SENSOR_S": "2",  # the next stage within seconds of the last one
        }
        # the schedule on, its nightly tick already due: the daemon fires it as soon as it starts
        start_schedule_with_due_tick(
            env, "nightly_batch_schedule", ROOT / "workspace.yaml", open_instance=lambda: dg.DagsterInstance.from_config(str(home))
        )
        server, url = start_dagster_dev(env, ROOT / "workspace.yaml", tmp_path)

        def alive():
            assert server.alive(), server.log_tail()

        try:
            [entry] = wait_until(lambda: loaded_locations(url), timeout_s=120, what="the code location", alive=alive)
            assert entry["locationOrLoadError"]["__typename"] != "PythonError", entry
            t0 = time.monotonic()
            runs, pipeline = wait_for_pipeline(url, "nightly", timeout_s=240, alive=alive)
            pipeline_s = time.monotonic() - t0
            stop_schedule(url, "nightly_batch_schedule")
        finally:
            server.stop()

        mine = [r for r in runs if run_tag(r, "hybrid_audio/pipeline") == pipeline]
        # every stage is a run of an asset job, launched by the daemon; none nested in another run
        assert {r["jobName"] for r in mine} == ASSET_JOBS, mine
        assert all(r["parentRunId"] is None and r["rootRunId"] is None for r in mine)
        assert all(r["status"] == "SUCCESS" for r in mine)
        assert {run_tag(r, "dagster/schedule_name") for r in mine if r["jobName"] == "datasets_job"} == {"nightly_batch_schedule"}
        assert all(run_tag(r, "dagster/sensor_name") == "pipeline_sensor" for r in mine if r["jobName"] != "datasets_job")
        paths = ProjectPaths(root=str(root))
        checked = 0
        for tid in ("followup-en", "seguimiento-es"):
            for dev in os.listdir(root / "output" / tid):
                n, problems = verify_partition(paths, tid, dev)
                assert problems == [] and n == 3
                checked += n
        assert checked == 3 * 2 * 2
        calls_after_schedule = len(api.tts_requests)
        assert calls_after_schedule > 0

        # the headless batch on the same home, same engine: the stage runs in-process, no new TTS call
        batch = subprocess.run(
            [sys.executable, "-m", "hybrid_audio_dagster.runner.headless", "batch"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert batch.returncode == 0, batch.stderr[-3000:]
        assert "TTS calls          0" in batch.stdout
        assert len(api.tts_requests) == calls_after_schedule

    hits = [h for folder in (home, root) for h in _secret_hits(folder, KEY.encode())]
    assert hits == [], hits
    print(f"scheduled pipeline: {len(mine)} runs in {pipeline_s:.0f}s after the code location loaded")
