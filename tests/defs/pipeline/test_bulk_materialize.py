"""The UI's "Materialize all": a backfill over every executable asset, then pipeline_sensor
completes it with the stems and messages of the partitions its datasets run added.

The backfill's runs are executed here as the daemon executes them (the implicit asset job
over the run's asset selection, tagged with the backfill's id); the browser test in
tests/system/test_ui_materialize_all.py clicks the real button.
"""

from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.defs.pipeline.sensors import BULK_PREFIX
from hybrid_audio_dagster.defs.tags import BACKFILL_TAG, PIPELINE_TAG, STAGE_TAG, TRIGGER_TAG
from testkit.project import make_project
from tests.support.campaign import CountingTTS, all_messages_verified, calls, drive_pipelines, sensor_requests

# what a fresh project's "Materialize all" backfill runs first: its unpartitioned assets (its
# partitioned targets are empty: no names, developers or templates partitions exist yet)
UNPARTITIONED = [
    "suppression",
    "names_dataset",
    "developers_dataset",
    "message_templates",
    "retired_outputs",
    "rotation_outlook",
    "bucket_consistency",
]


@pytest.fixture
def project(tmp_path: Path):
    return make_project(tmp_path / "project", ["John", "Maria", "Zoë"], ["Wyndham", "Hilton Grand Vacations"])


def backfill_run(defs, instance, backfill_id: str) -> dg.ExecuteInProcessResult:
    """The backfill's run of the unpartitioned assets, as the backfill daemon launches it."""
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in UNPARTITIONED],
        tags={BACKFILL_TAG: backfill_id},
        raise_on_error=False,
    )


def test_materialize_all_on_a_fresh_project_builds_the_campaign_and_a_warm_one_nothing(project, tmp_path):
    paths = project
    log = tmp_path / "tts.log"
    with dg.instance_for_test() as instance:
        defs = build_defs({"paths": paths, "tts": CountingTTS(log_path=str(log))})
        fresh = backfill_run(defs, instance, "bf-fresh")
        assert fresh.success
        assert len(instance.get_dynamic_partitions("names")) == 3  # the run added them; the backfill had none

        results = drive_pipelines(defs, instance, [])
        assert results and all(r.success for r in results)
        assert {r.dagster_run.tags[PIPELINE_TAG] for r in results} == {f"{BULK_PREFIX}bf-fresh"}
        assert {r.dagster_run.tags[TRIGGER_TAG] for r in results} == {"ui"}
        stages = [r.dagster_run.tags[STAGE_TAG] for r in results]
        assert set(stages[:-1]) == {"stems"} and stages[-1] == "messages"
        assert all_messages_verified(paths, instance) == 3 * 2 * 2  # names × developers × templates, bit-exact
        cold_calls = len(calls(log))
        assert cold_calls > 0

        # the same click on a warm project: the backfill covers every partition itself; the
        # sensor adds nothing (its datasets run added no partition)
        outputs = sorted(paths.output.rglob("*.wav"))
        mtimes = [p.stat().st_mtime_ns for p in outputs]
        assert backfill_run(defs, instance, "bf-warm").success
        assert sensor_requests(defs, instance, "pipeline_sensor") == []
        assert len(calls(log)) == cold_calls
        assert [p.stat().st_mtime_ns for p in outputs] == mtimes


def test_a_backfill_that_does_not_rebuild_the_rosters_starts_nothing(project, tmp_path):
    paths = project
    with dg.instance_for_test() as instance:
        defs = build_defs({"paths": paths, "tts": CountingTTS(log_path=str(tmp_path / "tts.log"))})
        # a plain (non-backfill) datasets run, e.g. the group-level Materialize on "datasets"
        assert (
            defs.resolve_implicit_global_asset_job_def()
            .execute_in_process(instance=instance, asset_selection=[dg.AssetKey(a) for a in UNPARTITIONED])
            .success
        )
        # a backfill of the templates' script stems only
        result = defs.resolve_job_def("script_stems_job").execute_in_process(
            instance=instance, partition_key="followup-en", tags={BACKFILL_TAG: "bf-stems"}
        )
        assert result.success
        assert sensor_requests(defs, instance, "pipeline_sensor") == []
