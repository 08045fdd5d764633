"""The benchmark suite (issue #7) at smoke-test size, so it never rots.

Runs ``python -m bench.run --tiny`` end to end (every scenario, real Dagster runs, the fake
Cartesia server) and checks the report's structure and its correctness counters. Timings
are never asserted: they mean nothing at this size and on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hybrid_audio_dagster.defs.resources.paths import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.bench, pytest.mark.timeout(900)]  # every scenario at tiny size: ~1.5-4 min

SCENARIOS = {"core", "batch_small", "batch_large", "stems_offline", "stems_cartesia", "tts_piper", "scale", "partitions"}
TARGET_IDS = {
    "core.vs_numpy_soundfile",
    "core.vs_pydub",
    "core.byte_identical",
    "batch.messages_per_s",
    "batch.vs_pydub",
    "batch.vs_numpy_soundfile",
    "noop.checked_per_s",
    "noop.tts_calls",
    "noop.files_rewritten",
    "cartesia.fraction_of_ideal",
    "cartesia.body_fraction_of_ideal",
    "cartesia.max_in_flight",
    "scaling.throughput",
    "scaling.peak_rss",
    "scale.bookkeeping_pg",
    "scale.noop_1m_pg",
    "scale.memory_pg",
    "scale.bookkeeping_sqlite",
    "scale.noop_1m_sqlite",
    "scale.memory_sqlite",
    "scale.noop_tts_calls",
    "partitions.grouped_sqlite",
    "partitions.grouped_postgres",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--tiny", "--jobs", "4", "--scratch", str(tmp / "scratch"), "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,  # a hang guard, not a speed bound: the bench at --tiny on a busy 2-core machine
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not any((tmp / "scratch").iterdir()), "the suite left scratch files behind"
    return json.loads(out.read_text()), proc.stdout


def test_every_scenario_ran(report):
    data, _ = report
    assert data["schema"] == 1 and data["preset"] == "tiny" and data["ok"] is True
    assert set(data["scenarios"]) == SCENARIOS
    for key, scenario in data["scenarios"].items():
        assert scenario.get("ok") is True, (key, scenario.get("error"), scenario.get("traceback"))
    assert {t["id"] for t in data["targets"]} == TARGET_IDS
    for t in data["targets"]:
        assert set(t) >= {"id", "what", "value", "op", "target", "pass"}


def test_core_outputs_are_byte_identical(report):
    data, _ = report
    core = data["scenarios"]["core"]
    assert {"core", "numpy_soundfile"} <= set(core["approaches"])
    assert "pydub" in core["approaches"] or "pydub" in core["skipped"]
    assert core["byte_identical"] and all(v["byte_identical"] for v in core["byte_identical"].values())
    for name, why in core["skipped"].items():  # sox/ffmpeg skip cleanly when not installed
        assert name in {"sox", "ffmpeg", "core_crc32c", "pydub", "pydub_reload"} and why
    assert core["message"]["sample_rate"] == 44100 and core["message"]["seconds"] > 10


def test_noop_rerun_makes_no_tts_call_and_rewrites_nothing(report):
    data, _ = report
    for key in ("batch_small", "batch_large"):
        b = data["scenarios"][key]
        s = b["summary"]
        assert b["messages"] == b["names"] * b["developers"]
        assert s["noop_tts_calls"] == 0 and s["noop_synthesize_calls"] == 0
        assert s["noop_files_rewritten"] == 0 and s["noop_written"] == 0
        assert s["write_tts_calls"] == 0  # warm stems: the timed batch never calls the engine
        for rep in b["reps"]:
            assert rep["write"]["written"] == b["messages"] and rep["write"]["failed"] == 0
            assert rep["noop"]["checked"] == b["messages"]
        assert set(s["baselines_messages_per_s"]) >= {"core", "numpy_soundfile"}
        assert s["peak_rss_mb"] > 0 and b["child_max_rss_mb"] > 0
    assert data["correctness"] == {
        "core.byte_identical": True,
        "noop.tts_calls": True,
        "noop.files_rewritten": True,
        "cartesia.max_in_flight": True,
    }


def test_stems_scenarios_count_calls_and_respect_the_cap(report):
    data, _ = report
    off = data["scenarios"]["stems_offline"]
    assert off["summary"]["tts_calls_per_run"] == off["names"]
    cart = data["scenarios"]["stems_cartesia"]
    s = cart["summary"]
    assert s["tts_calls_per_run"] == cart["names"]
    assert 1 <= s["max_in_flight"] <= cart["cap"]
    assert s["requests"] == cart["names"] * len(cart["reps"]) and s["rejected_429"] == 0


def test_table_is_printed(report):
    _, stdout = report
    assert "targets" in stdout and "messages range run" in stdout and "report:" in stdout


def test_piper_scenario_measures_both_engines(report):
    data, _ = report
    pip = data["scenarios"]["tts_piper"]
    if pip.get("skipped"):  # the [piper] extra is not installed
        return
    assert set(pip["summary"]) == {"piper", "espeak-ng"}
    assert pip["deterministic"] == {"piper": True, "espeak-ng": True}
    assert pip["ratios"]["piper_vs_espeak_stems_per_s_parallel"] > 0


def test_scale_scenario_measures_both_backends(report):
    data, stdout = report
    scale = data["scenarios"]["scale"]
    backends = {"sqlite"} | ({"postgres"} if "postgres" not in scale["skipped"] else set())
    assert set(scale["backends"]) == backends
    for backend in backends:
        for n, r in scale["backends"][backend].items():
            assert r["ok"] is True, (backend, n, r.get("error"), r.get("traceback"))
            c, z = r["cold"], r["noop"]
            assert c["name_partitions"] == r["names"] == int(n)
            assert c["tts_calls"] == c["synthesize_calls"] > 0 and c["vs_engine_alone"] > 0
            assert z["checked"] == r["messages"] == r["names"] * r["developers"] * r["templates"]
            assert z["tts_calls"] == z["synthesize_calls"] == z["written"] == z["files_rewritten"] == 0
            assert "EXTRAPOLATED" in z["extrapolation"] and z["noop_1m_s"] > 0 and not z["noop_1m_measured"]
            assert r["peak_rss_mb"] > 0
    for t in data["targets"]:
        if t["id"].endswith("_pg") and "postgres" not in backends:
            assert t["pass"] is None and t["note"]
    assert "7 scale" in stdout and "EXTRAPOLATED" in stdout


def test_partitions_scenario_compares_layouts_per_name(report):
    data, stdout = report
    part = data["scenarios"]["partitions"]
    backends = {"sqlite"} | ({"postgres"} if "postgres" not in part["skipped"] else set())
    for c in part["cases"]:
        assert c["ok"] is True, c.get("error")
        assert c["materializations_recorded"] == c["partitions"]  # one per partition, in the real instance
        if c["layout"] == "per-name":
            assert c["partitions"] == c["names"]
        else:
            assert c["partitions"] < c["names"] and c["names_per_partition_max"] > 1
    assert {(c["backend"], c["layout"]) for c in part["cases"]} == {(b, lay) for b in backends for lay in ("per-name", "grouped")}
    assert set(part["summary"]) == backends and all(e["grouped_vs_per_name"] > 0 for e in part["summary"].values())
    pooled = [c for c in part["cases"] if c.get("via") == "pgbouncer"]
    if "postgres" in backends and "pgbouncer" not in part["skipped"]:  # .ci/run installs it
        assert len(pooled) == 1 and pooled[0]["event_batch_size"] == 1000
        assert part["summary"]["postgres"]["per_name_pgbouncer_ms"] > 0 and "via PgBouncer" in stdout
    else:
        assert not pooled
    assert "8 partitions" in stdout
