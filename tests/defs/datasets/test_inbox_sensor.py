"""The inbox path: a sensor that only decides, ingest runs that store or reject, and the
pipeline that takes an upload's new names or developers through stems and messages."""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.datasets import admin as dataset_admin
from hybrid_audio_dagster.core.datasets.files import DatasetAdminError
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.defs.datasets.sensors import InboxSettings, build_inbox_sensor, evaluate_inbox
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.tags import STAGE_TAG
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import write_csv
from tests.support.campaign import NoCallTTS, drive_pipelines, project_env, run_requests, sensor_requests

NAMES = ["John", "Maria", "José"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham"]
SETTINGS = InboxSettings(min_age_s=0, max_bytes=20_000)


@pytest.fixture
def project(tmp_path: Path):
    return project_env(tmp_path / "project", NAMES, DEVELOPERS)


@pytest.fixture
def campaign(project):
    """The campaign after its first batch (so uploads add to a live dataset)."""
    root, paths, resources, instance = project
    run_full_batch(instance, resources)
    return project


def tick(paths, cursor=None, settings=SETTINGS):
    return evaluate_inbox(paths, cursor, settings)


def settle(paths, cursor=None, settings=SETTINGS):
    """Two ticks: the first sees the file, the second (size/mtime unchanged) asks for its run."""
    first = tick(paths, cursor, settings)
    assert not first.run_requests and not first.dynamic_partitions_requests
    return tick(paths, first.cursor, settings)


def apply_partitions(instance, result):
    # build_sensor_context does not apply dynamic partition requests: do what the daemon does
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def state(paths: ProjectPaths) -> dict:
    def tree(folder: Path):
        return sorted((str(p.relative_to(folder)), p.lstat().st_mtime_ns) for p in folder.rglob("*")) if folder.exists() else []

    snap = {k: (paths.datasets / f"{k}.json").read_bytes() for k in ("names", "developers") if (paths.datasets / f"{k}.json").exists()}
    return {"snapshots": snap, "store": tree(paths.dataset_store), "inbox": tree(paths.inbox), "rejected": tree(paths.rejected)}


def ingest(defs, instance, result):
    apply_partitions(instance, result)
    return run_requests(defs, instance, result.run_requests)


# --------------------------------------------------------------------------- the tick decides


def test_a_tick_only_decides_and_is_idempotent(campaign):
    root, paths, resources, instance = campaign
    write_csv(paths.inbox / "names_march.csv", "First Name", ["John", "Priya", "Kwame"])
    before = state(paths)
    first = tick(paths)
    second, again = tick(paths, first.cursor), tick(paths, first.cursor)
    assert not first.run_requests  # not stable yet
    assert [r.run_key for r in second.run_requests] == [r.run_key for r in again.run_requests]
    assert [(r.partition_key, r.run_config, r.tags) for r in second.run_requests] == [
        (r.partition_key, r.run_config, r.tags) for r in again.run_requests
    ]
    [req] = second.run_requests
    assert req.job_name == "ingest_job" and req.partition_key.startswith("names-")
    assert req.run_config["ops"]["dataset_uploads"]["config"]["inbox_file"] == "names_march.csv"
    [add] = second.dynamic_partitions_requests
    assert add.partitions_def_name == "uploads" and list(add.partition_keys) == [req.partition_key]
    # "Test sensor" changes nothing: the file stays in the inbox, no dataset moves
    assert state(paths) == before
    assert instance.get_dynamic_partitions("uploads") == []
    # the registered sensor is the same function, off by default (uploads can cost money)
    sensor = build_inbox_sensor(settings=SETTINGS)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.build_sensor_context(cursor=first.cursor, instance=instance, resources={"paths": paths}) as ctx:
        assert [r.run_key for r in sensor(ctx).run_requests] == [req.run_key]
    assert state(paths) == before


def test_file_still_being_written_is_not_asked_for_until_stable(campaign):
    root, paths, resources, instance = campaign
    target = paths.inbox / "names_growing.csv"
    write_csv(target, "name", ["Priya"])
    first = tick(paths)
    with target.open("a", encoding="utf-8") as fh:
        fh.write('"Kwame"\n')
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000))
    assert not tick(paths, first.cursor).run_requests  # changed since the last tick
    young = InboxSettings(min_age_s=3600)
    assert not settle(paths, settings=young).run_requests  # too recent


# ---------------------------------------------------------------------- runs do the work


def test_upload_to_messages_through_the_pipeline(campaign):
    root, paths, resources, instance = campaign
    defs = build_defs(resources)
    write_csv(paths.inbox / "names_march.csv", "First Name", ["John", "Priya", "Kwame"])
    [ingest_run] = ingest(defs, instance, settle(paths))
    assert ingest_run.success
    assert not (paths.inbox / "names_march.csv").exists()  # the run took it, not the tick
    [upload] = [e for e in ingest_run.get_asset_materialization_events() if e.asset_key == dg.AssetKey("dataset_uploads")]
    md = upload.materialization.metadata
    assert md["status"].value == "stored" and md["rows"].value == 3
    assert md["provenance"].value["inbox_file"] == "names_march.csv"
    assert instance.get_dynamic_partitions("names")[-2:] == ["priya", "kwame"]

    stems_requests = sensor_requests(defs, instance, "pipeline_sensor")
    assert {r.tags[STAGE_TAG] for r in stems_requests} == {"stems"}
    assert [r.job_name for r in stems_requests] == ["name_stems_job"]
    [stems] = run_requests(defs, instance, stems_requests)
    assert {e.partition for e in stems.get_asset_materialization_events()} == {"priya", "kwame"}
    assert sensor_requests(defs, instance, "pipeline_sensor") == sensor_requests(defs, instance, "pipeline_sensor")
    [msg_req] = sensor_requests(defs, instance, "pipeline_sensor")
    assert msg_req.run_config["ops"]["messages"]["config"]["names"] == ["priya", "kwame"]
    [msgs] = run_requests(defs, instance, [msg_req])
    written = sum(e.materialization.metadata["written"].value for e in msgs.get_asset_materialization_events())
    templates, developers = instance.get_dynamic_partitions("templates"), instance.get_dynamic_partitions("developers")
    assert written == 2 * len(templates) * len(developers)
    for tid in templates:
        for dev in developers:
            rows = {r["name_key"] for r in read_manifest(manifest_path(paths.output, tid, dev))}
            assert rows >= {"priya", "kwame"} and len(rows) == len(NAMES) + 2
            checked, problems = verify_partition(paths, tid, dev)
            assert problems == [] and checked == len(NAMES) + 2
    assert sensor_requests(defs, instance, "pipeline_sensor") == []  # the pipeline is done

    # the same content dropped again is set aside by its run; nothing new to build
    write_csv(paths.inbox / "names_again.csv", "First Name", ["John", "Priya", "Kwame"])
    [dup] = ingest(defs, instance, settle(paths))
    [upload] = [e for e in dup.get_asset_materialization_events() if e.asset_key == dg.AssetKey("dataset_uploads")]
    assert upload.materialization.metadata["status"].value == "duplicate"
    assert sensor_requests(defs, instance, "pipeline_sensor") == []


def test_developer_upload_builds_every_name_for_the_new_developer(campaign):
    root, paths, resources, instance = campaign
    defs = build_defs(resources)
    (paths.inbox).mkdir(parents=True, exist_ok=True)
    (paths.inbox / "brands_q2.json").write_text(json.dumps(["Marriott Vacation Club"]), encoding="utf-8")
    [run] = ingest(defs, instance, settle(paths))
    assert run.success
    new_dev = instance.get_dynamic_partitions("developers")[-1]
    results = run_requests(defs, instance, sensor_requests(defs, instance, "pipeline_sensor"))
    assert [r.dagster_run.job_name for r in results] == ["developer_stems_job"]
    [msgs] = run_requests(defs, instance, sensor_requests(defs, instance, "pipeline_sensor"))
    parts = {e.partition for e in msgs.get_asset_materialization_events()}
    assert {dg.MultiPartitionKey(dict(p.keys_by_dimension)).keys_by_dimension["developer"] for p in parts} == {new_dev}
    assert sum(e.materialization.metadata["written"].value for e in msgs.get_asset_materialization_events()) == len(NAMES) * 2


def test_spend_guard_stops_an_upload_above_the_budget_before_any_tts_call(campaign):
    root, paths, resources, instance = campaign
    guard = SpendGuardResource(max_chars_per_automated_run=10)
    defs = build_defs({**resources, "tts": NoCallTTS(), "spend_guard": guard})
    write_csv(paths.inbox / "names_big.csv", "name", ["Priya", "Kwame", "Alessandra"])
    [run] = ingest(defs, instance, settle(paths))
    assert run.success
    with dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx:
        result = defs.get_sensor_def("pipeline_sensor")(ctx)
    assert isinstance(result, dg.SkipReason)
    assert "above the automated-run budget of 10" in result.skip_message and "characters" in result.skip_message
    # the stems asset enforces it too, for a run a sensor launched
    [stems] = run_requests(
        defs, instance, [dg.RunRequest(job_name="name_stems_job", partition_key="priya", tags={"dagster/sensor_name": "pipeline_sensor"})]
    )
    assert not stems.success
    [failure] = [e for e in stems.all_events if e.is_step_failure]
    assert "above the automated-run budget of 10" in failure.step_failure_data.error.message  # and NoCallTTS was never called


def test_malformed_files_are_rejected_by_their_runs_and_datasets_unchanged(campaign):
    root, paths, resources, instance = campaign
    defs = build_defs(resources)
    paths.inbox.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in MALFORMED.items():
        (paths.inbox / name).write_bytes(data)
    (paths.inbox / "names_link.csv").symlink_to(root / "data" / "names.csv")  # never followed
    snapshots = state(paths)["snapshots"]
    partitions_before = {k: instance.get_dynamic_partitions(k) for k in ("names", "developers")}

    results = ingest(defs, instance, settle(paths))
    assert len(results) == len(MALFORMED) + 1 and not any(r.success for r in results)
    assert not any(paths.inbox.iterdir())
    assert state(paths)["snapshots"] == snapshots
    assert {k: instance.get_dynamic_partitions(k) for k in ("names", "developers")} == partitions_before
    for name, (_, code) in MALFORMED.items():
        [moved] = [p for p in paths.rejected.glob(f"*-{name}")]
        report = json.loads(moved.with_name(moved.name + ".report.json").read_text())
        assert report["status"] == "rejected" and report["problem"]["code"] == code, (name, report)
    assert (root / "data" / "names.csv").is_file() and next(paths.rejected.glob("*-names_link.csv")).is_symlink()
    formula = json.loads(next(paths.rejected.glob("*-names_formula.csv.report.json")).read_text())
    assert [(r["row"], r["reason"]) for r in formula["rejects"]] == [
        (3, "formula_injection"),
        (4, "formula_injection"),
        (5, "formula_injection"),
    ]
    # a failed upload partition says why in its run; the pipeline does not go on
    assert sensor_requests(defs, instance, "pipeline_sensor") == []


MALFORMED = {
    "names_wrong_columns.csv": (b"email,phone\nx@example.com,123\n", "no_column"),
    "names_garbage.csv": (bytes(range(256)) * 8, "binary"),
    "names_empty.csv": (b"", "empty_file"),
    "names_huge.csv": (("name\n" + "Anna\n" * 10_000).encode(), "too_large"),
    "names_mixed.csv": ("name\nJosé\n".encode() + "Zoë\n".encode("cp1252"), "mixed_encoding"),
    "names_formula.csv": (b'name\nAlice\n"=HYPERLINK(""http://x"")"\n+cmd\n@SUM(A1)\n', "rows_rejected"),
    "names_paths.csv": (b"name\nBob\n../../etc/passwd\nC:\\Windows\\system32\n", "rows_rejected"),
    "developers_wrong.json": (b'{"brands": 3}', "unsupported_json"),
}


# -------------------------------------------------------------------------- admin


def test_preview_upload_list_delete(campaign):
    root, paths, resources, instance = campaign
    data = b"name\nPriya\n=1+1\nKwame\n"
    pv = dataset_admin.preview(paths, data, "names", n=1, filename="x.csv")
    assert [i["key"] for i in pv["items"]] == ["priya"] and pv["total_items"] == 2
    assert [r["reason"] for r in pv["rejects"]] == ["formula_injection"] and pv["report"]["status"] == "rejected"
    assert not paths.inbox.exists() or not any(paths.inbox.iterdir())  # preview placed nothing

    refused = dataset_admin.upload(paths, data, filename="names.csv")
    assert not refused.ok and refused.placed is None

    up = dataset_admin.upload(paths, b"name\nPriya\n", filename="../../evil/names_x.csv", ingest=True)
    assert up.ok and up.ingested and up.new_keys == ["priya"]
    assert up.placed.parent == paths.dataset_store / "names"
    listed = dataset_admin.list_datasets(paths)
    uploads = [d for d in listed if d["source"] == "upload"]
    assert [d["name"] for d in uploads] == [f"names/{up.placed.name}"] and uploads[0]["items"] == 1
    assert {d["name"] for d in listed if d["source"] == "seed"} == {"names.csv", "developers.csv"}

    outside = root / "data" / "names.csv"
    for bad in [
        "../names.csv",
        "names/../../names.csv",
        str(outside),
        "/etc/passwd",
        "names",
        "names/",
        "..",
        "store/x",
        "names/.hidden",
        "C:\\x",
    ]:
        with pytest.raises(DatasetAdminError):
            dataset_admin.delete(paths, bad)
    assert outside.exists()
    (paths.dataset_store / "names" / "link.csv").symlink_to(outside)
    with pytest.raises(DatasetAdminError):
        dataset_admin.delete(paths, "names/link.csv")
    assert outside.exists()
    (paths.dataset_store / "names" / "link.csv").unlink()

    dataset_admin.delete(paths, f"names/{up.placed.name}")
    assert not up.placed.exists()
    assert "priya" not in json.loads((paths.datasets / "names.json").read_text())["items"].__repr__()


def test_an_upload_is_a_partition_and_the_roster_rolls_back_and_forward(campaign):
    root, paths, resources, instance = campaign
    defs = build_defs(resources)
    write_csv(paths.inbox / "names_march.csv", "name", ["Priya", "Kwame"])
    [run] = ingest(defs, instance, settle(paths))
    assert run.success
    [upload_key] = instance.get_dynamic_partitions("uploads")
    assert upload_key.startswith("names-")
    assert all(r.success for r in drive_pipelines(defs, instance, []))  # stems and messages of the upload
    assert len(list(paths.output.rglob("priya.wav"))) == 2 * len(DEVELOPERS)
    names_job = defs.resolve_job_def("datasets_job")

    def roster(config: dict) -> list[str]:
        result = names_job.execute_in_process(instance=instance, run_config={"ops": {"names_dataset": {"config": config}}})
        assert result.success
        [md] = [
            e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("names_dataset")
        ]
        assert upload_key in md["uploads"].value
        return instance.get_dynamic_partitions("names")

    keys = roster({"withdraw": [upload_key]})
    assert "priya" not in keys and "kwame" not in keys
    assert not list(paths.output.rglob("priya.wav"))  # retired by the same run
    assert roster({}) == keys  # the withdrawal persists
    restored = roster({"restore": [upload_key]})
    assert restored[-2:] == ["priya", "kwame"]  # the same slugs again
    bad = names_job.execute_in_process(
        instance=instance, run_config={"ops": {"names_dataset": {"config": {"withdraw": ["names-0000000000000000"]}}}}, raise_on_error=False
    )
    assert not bad.success and instance.get_dynamic_partitions("names") == restored
