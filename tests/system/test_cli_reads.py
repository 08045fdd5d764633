"""Reads without runs (issue 23), against a real ``dagster dev``: every read-only command
(``rotation status|next-pair|stream|next-script``, ``cache list|summary``, ``datasets list``)
launches no run (the instance's run count before and after) and answers exactly what the
reading run (``rotation_admin_job``, ``datasets_admin_job``) answers; after the rotation or
a dataset moves (an upload, a delete), the answer follows. Medians of 5 against ``status`` are printed (``-s``)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.cli.client import Client
from testkit.gcs_emulator import GCSEmulator
from testkit.project import make_project
from testkit.servers import loaded_locations, start_dagster_dev, wait_until
from tests.support.webserver import measured, run

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["John", "Maria", "Zoë", "Ann-Marie"]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations"]
BUCKET = "hybrid-audio-reads"
READS = [
    ("rotation", "status"),
    ("rotation", "next-pair"),
    ("rotation", "stream", "--limit", "7"),
    ("rotation", "next-script"),
    ("cache", "list"),
    ("cache", "summary"),
    ("datasets", "list"),
    ("bucket", "list"),
    ("bucket", "list", "--prefix", "stems/"),
    ("bucket", "check", "SIG"),
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_reads")
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())  # runs dequeued every second
    paths = make_project(root, NAMES, DEVELOPERS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "HYBRID_AUDIO_", "TTS_", "CARTESIA_", "STORAGE_EMULATOR"))}
    gcs = GCSEmulator(tmp / "gcs", default_bucket=BUCKET)
    gcs.start()
    env.update(
        DAGSTER_HOME=str(home),
        HYBRID_AUDIO_ROOT=str(root),
        PYTHONPATH=str(ROOT),
        TTS_ENGINE="offline",
        HYBRID_AUDIO_GCS_BUCKET=BUCKET,
        STORAGE_EMULATOR_HOST=gcs.url,
    )
    server, url = start_dagster_dev(env, ROOT / "workspace.yaml", tmp)

    def alive() -> None:
        assert server.alive(), f"dagster dev exited:\n{server.log_tail()}"

    try:
        wait_until(lambda: loaded_locations(url), timeout_s=120, what="the code location to load", alive=alive)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield {"url": url, "paths": paths, "home": home, "tmp": tmp, "instance": instance, "client": Client(url)}
    finally:
        server.stop()
        gcs.stop()


def runs(web) -> int:
    return web["instance"].get_runs_count()


def by_run(web, job: str, op: str, **config) -> dict:
    """What the reading run answers (the way these commands answered before)."""
    client = web["client"]
    run_id = client.launch(job, run_config={"ops": {op: {"config": config}}})
    states = client.wait([run_id], timeout_s=120)
    result = client.result(run_id, states[run_id]["status"])
    assert result.status == "SUCCESS", result.failure
    return {"ok": True, **((result.outputs.get(op) or {}).get("result") or {})}


def expected(web, args: tuple[str, ...]) -> dict | None:
    if args[0] == "rotation":
        action = args[1]
        config = {"action": action, **({"limit": int(args[3])} if action == "stream" else {})}
        return by_run(web, "rotation_admin_job", "rotation_admin", **config)
    if args == ("datasets", "list"):
        return by_run(web, "datasets_admin_job", "datasets_admin", action="list")
    if args[:2] == ("bucket", "list"):
        return by_run(web, "bucket_admin_job", "bucket_admin", action="list", prefix=args[3] if len(args) > 2 else "")
    if args[:2] == ("bucket", "check"):
        out = by_run(web, "bucket_admin_job", "bucket_admin", action="check", stem=args[2])
        return {**out, "ok": out["in_sync"]}
    return None  # the cache reads always read the stem assets' metadata


def read_without_run(web, capsys, args: tuple[str, ...]) -> dict:
    before = runs(web)
    code, out = run(web, capsys, *args)
    assert code == 0, out
    assert runs(web) == before, f"{' '.join(args)} launched a run"
    return out


def median_s(web, capsys, args: tuple[str, ...], n: int = 5) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        code, out = run(web, capsys, *args)
        times.append(time.perf_counter() - started)
        assert code == 0, out
    return statistics.median(times)


def median_shell_s(web, args: tuple[str, ...], n: int = 5) -> float:
    """The same from a shell: a fresh ``hybrid-audio`` process each time (start-up included)."""
    exe = Path(sys.executable).with_name("hybrid-audio")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        done = subprocess.run([str(exe), "--url", web["url"], "--json", *args], capture_output=True, timeout=120)
        times.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr[-2000:]
    return statistics.median(times)


def test_reads_launch_no_run_and_answer_what_the_runs_answer(web, capsys):
    code, done = run(web, capsys, "batch")
    assert code == 0, done
    code, repaired = run(web, capsys, "bucket", "repair")  # the CLI's batch does not deliver: fill the bucket
    assert code == 0, repaired
    code, checked = run(web, capsys, "bucket", "consistency")  # records the bucket's listing and every stem's check
    assert code == 0 and checked["status"] == "clean", checked
    sig = run(web, capsys, "cache", "list", "--kind", "scripts")[1]["stems"][0]["signature"][:16]
    reads = [tuple(sig if a == "SIG" else a for a in args) for args in READS]
    answers = {}
    for args in reads:
        answers[args] = read_without_run(web, capsys, args)
        want = expected(web, args)
        if want is not None:
            assert answers[args] == want, args
    assert len(answers[("rotation", "stream", "--limit", "7")]["pairs"]) == 7
    assert answers[("rotation", "next-pair")]["pair"] == answers[("rotation", "stream", "--limit", "7")]["pairs"][0]
    assert answers[("cache", "summary")]["total"]["stems"] > 0
    assert answers[("bucket", "list")]["count"] > answers[("bucket", "list", "--prefix", "stems/")]["count"] > 0
    assert answers[("bucket", "check", sig)]["in_sync"]

    base = median_s(web, capsys, ("status",))
    lines = [f"status {base * 1000:.0f} ms"]
    for args in reads:
        before = runs(web)
        t = median_s(web, capsys, args)
        assert runs(web) == before
        lines.append(f"{' '.join(args)} {t * 1000:.0f} ms ({t / base:.1f}x status)")
    measured(capsys, "median of 5 against dagster dev, in-process: " + "; ".join(lines))
    shell = median_shell_s(web, ("status",))
    lines = [f"status {shell * 1000:.0f} ms"]
    for args in reads:
        before = runs(web)
        t = median_shell_s(web, args)
        assert runs(web) == before
        assert t <= max(2 * shell, 1.0), f"{' '.join(args)}: {t:.2f}s against status {shell:.2f}s"
        lines.append(f"{' '.join(args)} {t * 1000:.0f} ms ({t / shell:.1f}x status)")
    measured(capsys, "median of 5 against dagster dev, a hybrid-audio process each: " + "; ".join(lines))


def test_after_the_rotation_or_a_dataset_moves_the_answers_follow(web, capsys):
    code, made = run(web, capsys, "rotation", "generate-pair")  # advances: a run, and it records the outlook
    assert code == 0, made
    status = read_without_run(web, capsys, ("rotation", "status"))
    assert status["advances"] == 1 and status == expected(web, ("rotation", "status"))
    nxt = read_without_run(web, capsys, ("rotation", "next-pair"))
    assert nxt == expected(web, ("rotation", "next-pair"))
    assert (nxt["pair"]["name"], nxt["pair"]["developer"]) != (made["name"], made["developer"])

    # an upload changes the names: the recorded outlook is older than them, so the read asks a run (and is right)
    extra = web["tmp"] / "names-extra.csv"
    extra.write_text("name\nPedro\n", encoding="utf-8")
    code, up = run(web, capsys, "datasets", "upload", str(extra))
    assert code == 0, up
    listed = read_without_run(web, capsys, ("datasets", "list"))  # recorded by the upload's own run
    assert listed == expected(web, ("datasets", "list")) and any(d["source"] == "upload" for d in listed["datasets"])
    before = runs(web)
    code, stream = run(web, capsys, "rotation", "stream", "--limit", "50")
    assert code == 0 and runs(web) == before + 1  # stale outlook: the reading run, as before
    assert any(p["name"] == "pedro" for p in stream["pairs"])
    # the next batch records the outlook again: no run from then on
    code, done = run(web, capsys, "batch")
    assert code == 0, done
    again = read_without_run(web, capsys, ("rotation", "stream", "--limit", "50"))
    assert again == stream

    # a delete records no listing (--no-refresh: no datasets run after it either): the listing is
    # older than the delete, so the next list asks the reading run and no longer shows the file
    stored = next(d["name"] for d in read_without_run(web, capsys, ("datasets", "list"))["datasets"] if d["source"] == "upload")
    code, deleted = run(web, capsys, "datasets", "delete", stored, "--no-refresh")
    assert code == 0 and deleted["deleted"] == stored and deleted["refresh_run"] is None, deleted
    before = runs(web)
    code, listed = run(web, capsys, "datasets", "list")
    assert code == 0 and runs(web) == before + 1, listed
    assert stored not in {d["name"] for d in listed["datasets"]} and listed == expected(web, ("datasets", "list"))


def test_assemble_one_message_is_one_run_and_where_its_seconds_go(web, capsys):
    """``assemble`` of a person whose stems exist: one run (the messages run describes the
    message it made), the same answer as ``message_info_job``; timed with a breakdown."""
    instance = web["instance"]
    totals, parts = [], []
    for _ in range(3):
        before = runs(web)
        started = time.perf_counter()
        code, out = run(web, capsys, "assemble", "John", "wyndham", "--template", "followup-en", "--force")
        totals.append(time.perf_counter() - started)
        assert code == 0 and out["verified"], out
        assert runs(web) == before + 1, "assemble launched more than the messages run"
        record = instance.get_run_record_by_id(out["run_id"])
        [step] = instance.get_run_step_stats(out["run_id"])
        parts.append(
            (
                record.start_time - record.create_timestamp.timestamp(),  # queued, then the launcher
                step.start_time - record.start_time,  # the run process: start, imports, the code location
                step.end_time - step.start_time,  # the step itself
                record.end_time - step.end_time,  # the run's end
            )
        )
    started = time.perf_counter()
    info = by_run(web, "message_info_job", "message_info", template="followup-en", developer="wyndham", name="john")
    second_run = time.perf_counter() - started  # what assemble paid before: this run after the messages run
    assert {k: out[k] for k in ("path", "relpath", "sha256", "duration_s", "frames", "verified", "problems")} == {
        k: info[k] for k in ("path", "relpath", "sha256", "duration_s", "frames", "verified", "problems")
    }
    median = statistics.median(totals)
    q, p, s, e = (statistics.median(x[i] for x in parts) for i in range(4))
    measured(
        capsys,
        f"assemble (stems exist, --force: the message rewritten) median of 3: {median:.2f}s = queue+launch {q:.2f}s, "
        f"run process start+imports {p:.2f}s, messages step {s:.2f}s, run end {e:.2f}s, CLI and polling {median - q - p - s - e:.2f}s; "
        f"the message_info run it no longer launches: {second_run:.2f}s",
    )
