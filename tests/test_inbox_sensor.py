"""The inbox sensor, the messages-after-stems sensor and the dataset admin functions."""

import json
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from hybrid_audio_dagster import dataset_admin
from hybrid_audio_dagster.assets.checks import verify_partition
from hybrid_audio_dagster.batch import run_full_batch
from hybrid_audio_dagster.core.audio.wav import parse_wav
from hybrid_audio_dagster.core.messages import manifest_path, read_manifest
from hybrid_audio_dagster.definitions import ALL_ASSETS, ALL_CHECKS
from hybrid_audio_dagster.jobs import ALL_JOBS
from hybrid_audio_dagster.resources.paths import ProjectPaths
from tests.support import project_env, write_csv
from hybrid_audio_dagster.sensors import (
    INGEST_TAG,
    InboxSettings,
    build_inbox_sensor,
    messages_after_stems_sensor,
)

NAMES = ["John", "Maria", "José"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham"]
SENSOR = build_inbox_sensor(settings=InboxSettings(min_age_s=0, max_bytes=20_000))


@pytest.fixture
def project(tmp_path: Path):
    return project_env(tmp_path / "project", NAMES, DEVELOPERS)


@pytest.fixture
def seeded(project):
    """Snapshots and partitions of the seed datasets, without any TTS (what the dataset assets do)."""
    root, paths, resources, instance = project
    for kind in ("names", "developers"):
        result = dataset_admin.refresh_snapshot(paths, kind)
        instance.add_dynamic_partitions(kind, result.keys)
    return project


def tick(paths, instance, cursor=None, sensor=SENSOR):
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"paths": paths})
    result = sensor(ctx)
    # build_sensor_context does not apply dynamic partition requests: do what the daemon does
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def settle(paths, instance, cursor=None, sensor=SENSOR):
    """Two ticks: the first sees the file, the second (size/mtime unchanged) reads it."""
    first = tick(paths, instance, cursor, sensor)
    assert not first.run_requests and not first.dynamic_partitions_requests
    return tick(paths, instance, first.cursor, sensor)


def state(paths: ProjectPaths) -> dict:
    snap = {k: (paths.datasets / f"{k}.json").read_bytes() for k in ("names", "developers")}
    store = sorted(str(p.relative_to(paths.dataset_store)) for p in paths.dataset_store.rglob("*")) if paths.dataset_store.exists() else []
    return {"snapshots": snap, "store": store}


# ------------------------------------------------------------------------------ accepted


def test_new_names_file_adds_partitions_and_requests_stems_only_for_new_keys(seeded):
    root, paths, resources, instance = seeded
    before = instance.get_dynamic_partitions("names")
    write_csv(paths.inbox / "names_march.csv", "First Name", ["John", "Priya", "Kwame"])

    result = settle(paths, instance)
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == "names" and list(add.partition_keys) == ["priya", "kwame"]
    assert instance.get_dynamic_partitions("names") == before + ["priya", "kwame"]
    [req] = result.run_requests
    assert req.job_name == "name_stems_job"
    assert req.tags[ASSET_PARTITION_RANGE_START_TAG] == "priya" and req.tags[ASSET_PARTITION_RANGE_END_TAG] == "kwame"
    assert req.tags[INGEST_TAG] == req.run_key[:8]
    # the rebuilt snapshot is recorded as a materialization of the dataset asset
    [event] = result.asset_events
    assert event.asset_key == dg.AssetKey("names_dataset")
    assert event.metadata["new_partitions"].value == 2
    # moved into the versioned store, snapshot rebuilt, inbox empty
    assert not any(paths.inbox.iterdir())
    stored = [p for p in (paths.dataset_store / "names").iterdir() if not p.name.startswith(".")]
    assert len(stored) == 1 and stored[0].name.endswith("-names_march.csv")
    snap = json.loads((paths.datasets / "names.json").read_text())
    assert [i["key"] for i in snap["items"]][-2:] == ["priya", "kwame"]

    # identical content dropped again (another name): no-op, set aside, nothing requested
    write_csv(paths.inbox / "names_march_copy.csv", "First Name", ["John", "Priya", "Kwame"])
    again = settle(paths, instance, result.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests
    assert "already ingested" in again.skip_reason.skip_message
    assert len([p for p in (paths.dataset_store / "names").iterdir() if not p.name.startswith(".")]) == 1
    assert any((paths.rejected / "duplicates").glob("*names_march_copy.csv"))
    # a second version of a list keeps the first one
    write_csv(paths.inbox / "names_march.csv", "First Name", ["John", "Priya", "Kwame", "Ines"])
    third = settle(paths, instance, again.cursor)
    assert [r.partition_key for r in third.run_requests] == ["ines"]
    assert len([p for p in (paths.dataset_store / "names").iterdir() if not p.name.startswith(".")]) == 2


def test_developers_file_and_explicit_role_upload(seeded):
    root, paths, resources, instance = seeded
    up = dataset_admin.upload(paths, json.dumps(["Hyatt Vacation Club"]).encode(), filename="crm_export.json", role="developers")
    assert up.ok and up.placed == paths.inbox / "developers--crm_export.json"
    result = settle(paths, instance)
    [req] = result.run_requests
    assert req.job_name == "developer_stems_job" and req.partition_key == "hyatt-vacation-club"
    assert instance.get_dynamic_partitions("developers")[-1] == "hyatt-vacation-club"


def test_file_still_being_written_is_not_read_until_stable(seeded):
    root, paths, resources, instance = seeded
    target = paths.inbox / "names_partial.csv"
    write_csv(target, "name", ["Priya"])
    first = tick(paths, instance)
    with target.open("a", encoding="utf-8") as fh:  # the writer is still appending
        fh.write('"Kwame"\n')
    second = tick(paths, instance, first.cursor)
    assert not second.run_requests and target.exists()
    third = tick(paths, instance, second.cursor)
    [add] = third.dynamic_partitions_requests
    assert list(add.partition_keys) == ["priya", "kwame"]
    # and a minimum age keeps even a stable file waiting
    slow = build_inbox_sensor(settings=InboxSettings(min_age_s=3600))
    write_csv(paths.inbox / "names_new.csv", "name", ["Ines"])
    r = settle(paths, instance, third.cursor, sensor=slow)
    assert not r.run_requests and (paths.inbox / "names_new.csv").exists()


# ------------------------------------------------------------------------------ rejected

MALFORMED = {
    "names_wrong_columns.csv": ("email,phone\nx@example.com,123\n".encode(), "no_column"),
    "names_garbage.csv": (bytes(range(256)) * 8, "binary"),
    "names_empty.csv": (b"", "empty_file"),
    "names_huge.csv": (("name\n" + "Anna\n" * 10_000).encode(), "too_large"),
    "names_mixed.csv": ("name\nJosé\n".encode() + "Zoë\n".encode("cp1252"), "mixed_encoding"),
    "names_formula.csv": ('name\nAlice\n"=HYPERLINK(""http://x"")"\n+cmd\n@SUM(A1)\n'.encode(), "rows_rejected"),
    "names_paths.csv": ("name\nBob\n../../etc/passwd\nC:\\Windows\\system32\n".encode(), "rows_rejected"),
    "developers_wrong.json": (b'{"brands": 3}', "unsupported_json"),
}


def test_malformed_files_are_rejected_with_reports_and_datasets_unchanged(seeded):
    root, paths, resources, instance = seeded
    before = state(paths)
    partitions_before = {k: instance.get_dynamic_partitions(k) for k in ("names", "developers")}
    paths.inbox.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in MALFORMED.items():
        (paths.inbox / name).write_bytes(data)
    (paths.inbox / "names_link.csv").symlink_to(root / "data" / "names.csv")  # never followed

    result = settle(paths, instance)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert result.skip_reason is not None
    assert not any(paths.inbox.iterdir())
    assert state(paths) == before
    assert {k: instance.get_dynamic_partitions(k) for k in ("names", "developers")} == partitions_before
    for name, (_, code) in MALFORMED.items():
        [moved] = [p for p in paths.rejected.glob(f"*-{name}")]
        report = json.loads(moved.with_name(moved.name + ".report.json").read_text())
        assert report["status"] == "rejected" and report["problem"]["code"] == code, (name, report)
    assert (root / "data" / "names.csv").is_file() and next(paths.rejected.glob("*-names_link.csv")).is_symlink()
    formula = json.loads(next(paths.rejected.glob("*-names_formula.csv.report.json")).read_text())
    assert [(r["row"], r["reason"]) for r in formula["rejects"]] == [(3, "formula_injection"), (4, "formula_injection"), (5, "formula_injection")]
    assert all(r["value"] for r in formula["rejects"])
    pathrep = json.loads(next(paths.rejected.glob("*-names_paths.csv.report.json")).read_text())
    assert {r["reason"] for r in pathrep["rejects"]} == {"path_like"}
    # a rejected file dropped again is judged again (still refused), not silently swallowed
    (paths.inbox / "names_empty.csv").write_bytes(b"")
    again = settle(paths, instance, result.cursor)
    assert not again.run_requests and len(list(paths.rejected.glob("*-names_empty.csv"))) == 2


# ------------------------------------------------------------------------- end to end


def test_end_to_end_drop_two_names_to_messages_on_disk(project):
    root, paths, resources, instance = project
    run_full_batch(instance, resources)  # the campaign as it is before the drop
    defs = dg.Definitions(assets=ALL_ASSETS, asset_checks=ALL_CHECKS, jobs=ALL_JOBS, resources=resources)
    (paths.inbox).mkdir(parents=True, exist_ok=True)
    (paths.inbox / "names_new.txt").write_text("Priya\nKwame\n", encoding="utf-8")

    result = settle(paths, instance)
    [stems_req] = result.run_requests
    stems = defs.get_job_def(stems_req.job_name).execute_in_process(instance=instance, tags=stems_req.tags, run_config=stems_req.run_config)
    tts_calls = sum(e.materialization.metadata["tts_calls"].value for e in stems.get_asset_materialization_events())
    assert {e.partition for e in stems.get_asset_materialization_events()} == {"priya", "kwame"}
    assert tts_calls > 0

    run = instance.get_run_by_id(stems.run_id)
    ctx = dg.build_run_status_sensor_context(
        sensor_name="messages_after_stems_sensor", dagster_event=stems.get_run_success_event(), dagster_instance=instance, dagster_run=run,
    )
    msg_req = messages_after_stems_sensor(ctx)
    assert isinstance(msg_req, dg.RunRequest) and msg_req.run_key == f"messages-after:{stems.run_id}"
    assert msg_req.run_config["ops"]["messages"]["config"]["names"] == ["priya", "kwame"]
    msgs = defs.get_job_def(msg_req.job_name).execute_in_process(instance=instance, tags=msg_req.tags, run_config=msg_req.run_config)
    written = sum(e.materialization.metadata["written"].value for e in msgs.get_asset_materialization_events())

    templates = instance.get_dynamic_partitions("templates")
    developers = instance.get_dynamic_partitions("developers")
    assert written == 2 * len(templates) * len(developers)
    for tid in templates:
        for dev in developers:
            rows = {r["name_key"]: r for r in read_manifest(manifest_path(paths.output, tid, dev))}
            assert set(rows) >= {"priya", "kwame"} and len(rows) == len(NAMES) + 2
            for key in ("priya", "kwame"):
                audio = parse_wav((paths.output / rows[key]["path"]).read_bytes(), rows[key]["path"])
                assert audio.frames > 0
            checked, problems = verify_partition(paths, tid, dev)
            assert problems == [] and checked == len(NAMES) + 2

    # a non-inbox stems run is ignored by the messages sensor
    plain = defs.get_job_def("name_stems_job").execute_in_process(instance=instance, partition_key="priya")
    ctx = dg.build_run_status_sensor_context(
        sensor_name="messages_after_stems_sensor", dagster_event=plain.get_run_success_event(),
        dagster_instance=instance, dagster_run=instance.get_run_by_id(plain.run_id),
    )
    assert isinstance(messages_after_stems_sensor(ctx), dg.SkipReason)


# -------------------------------------------------------------------------- admin


def test_preview_upload_list_delete(seeded):
    root, paths, resources, instance = seeded
    data = "name\nPriya\n=1+1\nKwame\n".encode()
    pv = dataset_admin.preview(paths, data, "names", n=1, filename="x.csv")
    assert [i["key"] for i in pv["items"]] == ["priya"] and pv["total_items"] == 2
    assert [r["reason"] for r in pv["rejects"]] == ["formula_injection"] and pv["report"]["status"] == "rejected"
    assert not paths.inbox.exists() or not any(paths.inbox.iterdir())  # preview placed nothing

    refused = dataset_admin.upload(paths, data, filename="names.csv")
    assert not refused.ok and refused.placed is None

    up = dataset_admin.upload(paths, "name\nPriya\n".encode(), filename="../../evil/names_x.csv", ingest=True)
    assert up.ok and up.ingested and up.new_keys == ["priya"]
    assert up.placed.parent == paths.dataset_store / "names"
    listed = dataset_admin.list_datasets(paths)
    uploads = [d for d in listed if d["source"] == "upload"]
    assert [d["name"] for d in uploads] == [f"names/{up.placed.name}"] and uploads[0]["items"] == 1
    assert {d["name"] for d in listed if d["source"] == "seed"} == {"names.csv", "developers.csv"}

    outside = root / "data" / "names.csv"
    for bad in ["../names.csv", "names/../../names.csv", str(outside), "/etc/passwd", "names", "names/", "..", "store/x", "names/.hidden", "C:\\x"]:
        with pytest.raises(dataset_admin.DatasetAdminError):
            dataset_admin.delete(paths, bad)
    assert outside.exists()
    (paths.dataset_store / "names" / "link.csv").symlink_to(outside)
    with pytest.raises(dataset_admin.DatasetAdminError):
        dataset_admin.delete(paths, "names/link.csv")
    assert outside.exists()
    (paths.dataset_store / "names" / "link.csv").unlink()

    dataset_admin.delete(paths, f"names/{up.placed.name}")
    assert not up.placed.exists()
    assert "priya" not in json.loads((paths.datasets / "names.json").read_text())["items"].__repr__()


def test_two_files_in_one_tick_get_one_contiguous_stems_run_each(seeded):
    root, paths, resources, instance = seeded
    write_csv(paths.inbox / "names_a.csv", "name", ["Priya", "Kwame"])
    write_csv(paths.inbox / "names_b.csv", "name", ["Ines", "Olu", "Priya"])  # Priya: already in names_a
    result = settle(paths, instance)
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == ["priya", "kwame", "ines", "olu"]
    ranges = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in result.run_requests]
    assert ranges == [("priya", "kwame"), ("ines", "olu")]
    assert len({r.run_key for r in result.run_requests}) == 2

    # a per-tick limit leaves the rest for the next tick without losing their stability
    limited = build_inbox_sensor(settings=InboxSettings(min_age_s=0, max_files_per_tick=1))
    write_csv(paths.inbox / "names_c.csv", "name", ["Ana"])
    write_csv(paths.inbox / "names_d.csv", "name", ["Bea"])
    first = settle(paths, instance, result.cursor, sensor=limited)
    assert [r.partition_key for r in first.run_requests] == ["ana"]
    second = tick(paths, instance, first.cursor, sensor=limited)
    assert [r.partition_key for r in second.run_requests] == ["bea"]
