"""The nightly full-batch schedule and job."""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.batch import run_full_batch
from hybrid_audio_dagster.definitions import ALL_ASSETS, ALL_CHECKS, defs
from hybrid_audio_dagster.jobs import ALL_JOBS
from hybrid_audio_dagster.resources.tts import OfflineTTSResource
from tests.support import NoCallTTS, make_project
from hybrid_audio_dagster.schedules import (
    ALL_SCHEDULES,
    NIGHTLY_CRON,
    build_nightly_batch_schedule,
    nightly_batch_schedule,
    nightly_schedule_from_env,
)




@pytest.fixture
def project(tmp_path: Path):
    return make_project(tmp_path / "project", ["John", "Maria"], ["Wyndham"])


def test_schedule_definition():
    assert nightly_batch_schedule.cron_schedule == NIGHTLY_CRON == "0 2 * * *"
    assert nightly_batch_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert nightly_batch_schedule.job_name == "nightly_batch_job"
    assert defs.get_schedule_def("nightly_batch_schedule").cron_schedule == NIGHTLY_CRON
    custom = nightly_schedule_from_env({"HYBRID_AUDIO_NIGHTLY_CRON": "30 3 * * 1-5", "HYBRID_AUDIO_NIGHTLY_TZ": "Europe/Madrid"})
    assert custom.cron_schedule == "30 3 * * 1-5" and custom.execution_timezone == "Europe/Madrid"
    assert build_nightly_batch_schedule("15 1 * * *").cron_schedule == "15 1 * * *"


def test_nightly_run_on_warm_cache_makes_no_tts_call(project):
    paths = project
    with dg.instance_for_test() as instance:
        run_full_batch(instance, {"paths": paths, "tts": OfflineTTSResource()})  # warm the cache

        when = datetime(2026, 1, 2, 2, 0, tzinfo=timezone.utc)
        requests = [nightly_batch_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when)) for _ in range(2)]
        assert requests[0].run_key == requests[1].run_key == when.isoformat()
        req = requests[0]

        test_defs = dg.Definitions(
            assets=ALL_ASSETS, asset_checks=ALL_CHECKS, jobs=ALL_JOBS, schedules=ALL_SCHEDULES,
            resources={"paths": paths, "tts": NoCallTTS()},
        )
        job = test_defs.get_job_def(nightly_batch_schedule.job_name)
        result = job.execute_in_process(instance=instance, tags=req.tags, run_config=req.run_config)
        assert result.success
        summary = result.output_for_node("full_batch")
        assert summary["tts_calls"] == 0 and summary["chars_sent"] == 0
        assert summary["messages_written"] == 0 and summary["messages_failed"] == 0
        assert summary["messages_skipped"] == 2 * 1 * 2  # names × developers × templates
        # every stage is its own run in the instance, stems before messages
        assert len(summary["runs"]) >= 3
        [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
        assert output.step_output_data.metadata["tts_calls"].value == 0
        assert all(instance.get_run_by_id(r).is_success for r in summary["runs"])
