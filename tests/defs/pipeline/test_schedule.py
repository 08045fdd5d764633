"""The nightly full batch: the schedule asks for the datasets run, pipeline_sensor for the rest."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.definitions import build_defs, defs
from hybrid_audio_dagster.defs.pipeline.schedules import (
    NIGHTLY_CRON,
    build_nightly_batch_schedule,
    nightly_batch_schedule,
    nightly_schedule_from_env,
)
from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
from hybrid_audio_dagster.defs.tags import PIPELINE_TAG, STAGE_TAG
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import make_project
from tests.support.campaign import NoCallTTS, drive_pipelines


@pytest.fixture
def project(tmp_path: Path):
    return make_project(tmp_path / "project", ["John", "Maria"], ["Wyndham"])


def test_schedule_definition():
    assert nightly_batch_schedule.cron_schedule == NIGHTLY_CRON == "0 2 * * *"
    assert nightly_batch_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert nightly_batch_schedule.job_name == "datasets_job"
    assert defs.get_schedule_def("nightly_batch_schedule").cron_schedule == NIGHTLY_CRON
    custom = nightly_schedule_from_env({"HYBRID_AUDIO_NIGHTLY_CRON": "30 3 * * 1-5", "HYBRID_AUDIO_NIGHTLY_TZ": "Europe/Madrid"})
    assert custom.cron_schedule == "30 3 * * 1-5" and custom.execution_timezone == "Europe/Madrid"
    assert build_nightly_batch_schedule("15 1 * * *").cron_schedule == "15 1 * * *"


def _tick(instance, when):
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
        return nightly_batch_schedule(context)


@pytest.mark.slow
def test_scheduled_batch_is_stage_runs_and_warm_cache_makes_no_tts_call(project):
    paths = project
    with dg.instance_for_test() as instance:
        run_full_batch(instance, {"paths": paths, "tts": OfflineTTSResource()})  # warm the cache

        when = datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
        first, second = _tick(instance, when), _tick(instance, when)
        assert first.run_key == second.run_key and first.tags == second.tags  # a re-evaluated tick asks the same
        assert first.job_name == "datasets_job" and first.tags[STAGE_TAG] == "datasets"

        test_defs = build_defs({"paths": paths, "tts": NoCallTTS()})  # any TTS call fails the test
        results = drive_pipelines(test_defs, instance, [first])
        assert all(r.success for r in results)
        stages = [r.dagster_run.tags[STAGE_TAG] for r in results]
        assert stages == ["datasets", "messages"]  # every stem partition current: no stems run
        assert {r.dagster_run.tags[PIPELINE_TAG] for r in results} == {"nightly-20260102T020000Z"}
        [messages] = [r for r in results if r.dagster_run.tags[STAGE_TAG] == "messages"]
        mats = messages.get_asset_materialization_events()
        assert len(mats) == 2  # templates × developers
        assert messages.get_asset_check_evaluations() == []  # asset jobs leave the bit-exact check out
        assert sum(e.materialization.metadata["skipped"].value for e in mats) == 2 * 1 * 2
        assert sum(e.materialization.metadata["written"].value for e in mats) == 0


def test_scheduled_batch_runs_stems_strictly_before_messages(project):
    paths = project
    with dg.instance_for_test() as instance:
        test_defs = build_defs({"paths": paths, "tts": OfflineTTSResource()})
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 1, 3, 2, 0, tzinfo=UTC)) as ctx:
            request = nightly_batch_schedule(ctx)
        results = drive_pipelines(test_defs, instance, [request])
        assert all(r.success for r in results)
        stages = [r.dagster_run.tags[STAGE_TAG] for r in results]
        assert stages[0] == "datasets" and stages[-1] == "messages"
        assert set(stages[1:-1]) == {"stems"} and len(stages) == 2 + 3  # one run per stem asset
        # each run is a run of an asset job, not an op running nested materializations
        assert {r.dagster_run.job_name for r in results} == {
            "datasets_job",
            "name_stems_job",
            "developer_stems_job",
            "script_stems_job",
            "messages_job",
        }
        written = sum(e.materialization.metadata["written"].value for e in results[-1].get_asset_materialization_events())
        assert written == 2 * 1 * 2


def test_stale_ranges_bridge_small_gaps_for_the_pipeline_and_none_for_the_cli_plan():
    from hybrid_audio_dagster.defs.pipeline.plan import exact_spans
    from hybrid_audio_dagster.defs.pipeline.stages import MAX_RANGES, MERGE_GAP, contiguous_ranges

    keys = [f"k{i:03d}" for i in range(100)]
    stale = ["k000", "k001", f"k{MERGE_GAP + 2:03d}", "k090"]
    # the pipeline: a gap of MERGE_GAP current keys is cheaper bridged than split into another run
    assert contiguous_ranges(keys, stale) == [("k000", f"k{MERGE_GAP + 2:03d}"), ("k090", "k090")]
    # the CLI's plan lists exactly what is stale
    assert exact_spans(keys, stale) == [("k000", "k001"), (f"k{MERGE_GAP + 2:03d}", f"k{MERGE_GAP + 2:03d}"), ("k090", "k090")]
    scattered = keys[:: MERGE_GAP + 2][: MAX_RANGES + 1]
    assert contiguous_ranges(keys, scattered) == [(scattered[0], scattered[-1])]  # too many ranges: one span
    assert len(exact_spans(keys, scattered)) == MAX_RANGES + 1
    assert contiguous_ranges(keys, []) == exact_spans(keys, []) == []
