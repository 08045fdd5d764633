"""The code location as a whole: every definition by name, so a move can't drop one silently,
and each domain contributing its own."""

import dagster as dg

from hybrid_audio_dagster.definitions import DOMAINS, defs

ASSETS = [
    "bucket_consistency",
    "dataset_uploads",
    "delivered_messages",
    "developer_stems",
    "developers_dataset",
    "message_templates",
    "messages",
    "name_stems",
    "names_dataset",
    "retired_outputs",
    "rotation_advance",
    "rotation_cycle",
    "rotation_outlook",
    "script_stems",
    "suppression",
]
CHECKS = ["bit_exact@messages", "up_to_date@developer_stems", "up_to_date@name_stems", "up_to_date@script_stems"]
JOBS = [
    "batch_plan_job",
    "bucket_admin_job",
    "bucket_repair_job",
    "datasets_admin_job",
    "datasets_job",
    "delete_upload_job",
    "delivery_job",
    "developer_stems_job",
    "erase_name_job",
    "ingest_job",
    "invalidate_stems_job",
    "message_info_job",
    "messages_check_job",
    "messages_job",
    "name_stems_job",
    "rotation_admin_job",
    "rotation_advance_job",
    "rotation_cycle_job",
    "script_stems_job",
    "stem_preview_job",
]
SENSORS = ["inbox_sensor", "pipeline_sensor"]
SCHEDULES = ["nightly_batch_schedule", "rotation_schedule"]
RESOURCES = ["gcs", "paths", "spend_guard", "tts"]


def test_the_code_location_loads():
    dg.Definitions.validate_loadable(defs)


def test_every_definition_by_name():
    repo = defs.get_repository_def()
    assert sorted(k.to_user_string() for k in repo.assets_defs_by_key) == ASSETS
    assert sorted(f"{k.name}@{k.asset_key.to_user_string()}" for k in repo.asset_checks_defs_by_key) == CHECKS
    assert sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")) == JOBS
    assert sorted(s.name for s in repo.sensor_defs) == SENSORS
    assert sorted(s.name for s in repo.schedule_defs) == SCHEDULES
    assert sorted(defs.resources) == RESOURCES


def test_each_definition_comes_from_exactly_one_domain():
    """The top-level definitions only merge: every name is declared by one domain, none twice."""
    seen: dict[str, int] = {}
    for domain in DOMAINS:
        names = [
            *(a.key.to_user_string() for a in domain.assets or []),
            *(j.name for j in domain.jobs or []),
            *(s.name for s in domain.sensors or []),
            *(s.name for s in domain.schedules or []),
        ]
        for name in names:
            seen[name] = seen.get(name, 0) + 1
        assert not domain.resources, "resources are chosen in one place (defs/resources/environment.py)"
    assert sorted(n for n in seen if n.endswith("_job")) == JOBS
    assert sorted(n for n in seen if not n.endswith(("_job", "_sensor", "_schedule"))) == ASSETS
    assert [n for n, count in seen.items() if count > 1] == []
