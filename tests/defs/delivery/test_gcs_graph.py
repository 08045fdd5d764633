"""GCS wired into the Dagster graph, against a real ``gcp-storage-emulator`` on 127.0.0.1:
delivery after the messages, the bucket as a stem cache tier, the consistency report and
the repair job, outages."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import dagster as dg
import pytest
from google.cloud import storage

from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.definitions import defs as code_location
from hybrid_audio_dagster.defs.pipeline.stages import datasets_request
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
from hybrid_audio_dagster.defs.tags import DRIVER_TAG, PIPELINE_TAG, SCOPE_TAG, STAGE_TAG, TRIGGER_TAG
from hybrid_audio_dagster.runner.batch import BatchError, run_full_batch
from testkit.gcs_emulator import emulator_behind_proxy
from testkit.project import write_csv
from tests.support.campaign import NoCallTTS, drive_pipelines, project_env

BUCKET = "ha-graph"
PREFIX = "hybrid-audio"
NAMES = ["John", "Maria", "Zoë"]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations"]


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    with emulator_behind_proxy(tmp_path / "emulator", monkeypatch, BUCKET) as (emulator, proxy):
        yield emulator, proxy


def delivery(**kw) -> DeliveryResource:
    return DeliveryResource(bucket=BUCKET, max_attempts=3, retry_budget_s=3.0, timeout_s=5.0, **kw)


def project(root: Path, *, tts=None):
    _root, paths, resources, instance = project_env(root, NAMES, DEVELOPERS)
    resources = {**resources, "gcs": delivery(), **({"tts": tts} if tts is not None else {})}
    return paths, resources, instance


def bucket() -> storage.Bucket:
    return storage.Client(project="test").bucket(BUCKET)


def remote() -> dict[str, storage.Blob]:
    return {b.name: b for b in storage.Client(project="test").list_blobs(BUCKET)}


def md5(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def local_files(paths) -> dict[str, Path]:
    """Object name → local file of every stem (WAV + record), message and manifest."""
    out = {
        f"{PREFIX}/stems/{p.relative_to(paths.stems).as_posix()}": p
        for p in paths.stems.rglob("*")
        if p.is_file() and p.suffix in (".wav", ".json")
    }
    out |= {
        f"{PREFIX}/output/{p.relative_to(paths.output).as_posix()}": p
        for p in paths.output.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix in (".wav", ".parquet")
    }
    return out


def snapshot(paths) -> dict[str, bytes]:
    return {name: p.read_bytes() for name, p in local_files(paths).items()}


def consistency(instance, resources) -> tuple[dict, bool]:
    """Materialize ``bucket_consistency``: (its metadata, whether ``in_sync`` passed)."""
    result = dg.materialize(
        [*code_location.assets, *code_location.asset_checks],
        selection=dg.AssetSelection.assets("bucket_consistency"),
        instance=instance,
        resources=resources,
    )
    md = {k: v.value for k, v in result.asset_materializations_for_node("bucket_consistency")[0].metadata.items()}
    [check] = result.get_asset_check_evaluations()
    return md, check.passed


def repair(instance, resources, *, dry_run: bool) -> dict:
    job = build_defs(resources).resolve_job_def("bucket_repair_job")
    result = job.execute_in_process(instance=instance, run_config={"ops": {"bucket_repair": {"config": {"dry_run": dry_run}}}})
    assert result.success
    return result.output_for_node("bucket_repair")


@pytest.mark.slow
def test_batch_delivers_report_and_repair_then_a_fresh_checkout_needs_no_tts(gcs, tmp_path):
    emulator, _proxy = gcs
    paths, resources, instance = project(tmp_path / "a")
    started = time.perf_counter()
    first = run_full_batch(instance, resources)
    first_s = time.perf_counter() - started

    # every stem (WAV and record), message and manifest is in the bucket, same md5
    files, objects = local_files(paths), remote()
    assert first.tts_calls > 0 and first.messages_written == len(NAMES) * len(DEVELOPERS) * 2
    assert set(files) == set(objects), set(files) ^ set(objects)
    assert all(objects[name].md5_hash == md5(p) for name, p in files.items())
    assert first.gcs_uploaded == len(files) and first.gcs_skipped == 0
    # every object sent is in the audit log, with its bucket and the run that sent it
    from hybrid_audio_dagster.core import audit

    uploads = [e for e in audit.read(paths.logs) if e["event"] == "gcs_upload"]
    assert len(uploads) == len(files)
    assert {e["object"] for e in uploads} == set(files) and all(e["bucket"] == BUCKET and e["run_id"] for e in uploads)
    for p in paths.output.rglob("manifest.parquet"):
        for row in read_manifest(p):
            assert row["gs_uri"] == f"gs://{BUCKET}/{PREFIX}/output/{row['path']}"

    started = time.perf_counter()
    second = run_full_batch(instance, resources)
    second_s = time.perf_counter() - started
    assert (second.gcs_uploaded, second.gcs_skipped, second.tts_calls) == (0, len(files), 0)
    assert {n: b.generation for n, b in remote().items()} == {n: b.generation for n, b in objects.items()}
    md, passed = consistency(instance, resources)
    assert passed and md["clean"] and md["totals"]["in_sync"] == len(files)
    print(f"\nfirst batch {first_s:.2f}s ({first.gcs_uploaded} uploaded), second {second_s:.2f}s ({second.gcs_skipped} unchanged)")

    # damage: 2 remote deletions, 2 remote corruptions, 2 local deletions, 1 stem gone everywhere
    def obj(prefix_rel: str, suffix: str) -> str:
        return sorted(n for n in files if n.startswith(f"{PREFIX}/{prefix_rel}") and n.endswith(suffix))[0]

    stems = sorted(n for n in files if n.endswith(".wav") and "/stems/" in n)
    deleted_remote = [stems[0], obj("output/", ".wav")]
    corrupted = [stems[1].replace(".wav", ".json"), obj("output/", "manifest.parquet")]
    deleted_local = [stems[2], sorted(n for n in files if n.startswith(f"{PREFIX}/output/") and n.endswith(".wav"))[-1]]
    both = stems[3]
    for name in (*deleted_remote, both):
        bucket().blob(name).delete()
    for name in corrupted:
        bucket().blob(name).upload_from_string(b"not the same bytes")
    originals = {name: files[name].read_bytes() for name in deleted_local}
    for name in (*deleted_local, both):
        files[name].unlink()

    md, passed = consistency(instance, resources)
    assert not passed and not md["clean"]
    lines = (paths.logs / "bucket_consistency.jsonl").read_text().splitlines()
    items = [json.loads(x) for x in lines[1:]]
    by_state = {
        s: sorted(i["object_name"] for i in items if i["state"] == s) for s in ("local_only", "mismatched", "remote_only", "missing")
    }
    assert by_state == {
        "local_only": sorted(deleted_remote),
        "mismatched": sorted(corrupted),
        "remote_only": sorted(deleted_local),
        "missing": [both],
    }
    both_category = next(i["category"] for i in items if i["object_name"] == both)
    assert "| **all** |" in md["report"] and f"materialize `{both_category}`" in md["to_regenerate"]

    before = (snapshot(paths), {n: b.md5_hash for n, b in remote().items()})
    planned = repair(instance, resources, dry_run=True)
    assert (snapshot(paths), {n: b.md5_hash for n, b in remote().items()}) == before
    assert planned["counts"] == {"upload_planned": 4, "download_planned": 2, "regenerate_planned": 1, "missing_everywhere": 1}

    done = repair(instance, {**resources, "tts": NoCallTTS()}, dry_run=False)
    assert done["counts"] == {"upload_done": 4, "download_done": 2, "regenerate_regenerate": 1, "missing_everywhere": 1}
    assert list(done["regenerate"]) == [both_category] and not done["clean"]
    for name in deleted_local:
        assert files[name].read_bytes() == originals[name]
    # what is left is the stem on neither side: the next batch's stems run makes it (one TTS call)
    third = run_full_batch(instance, resources)
    assert third.tts_calls == 1
    md, passed = consistency(instance, resources)
    assert passed, md["report"]

    # a fresh checkout (empty stems/, new Dagster home) with the same bucket: zero TTS calls
    fresh_paths, fresh_resources, fresh_instance = project(tmp_path / "b", tts=NoCallTTS())
    assert not fresh_paths.stems.exists()
    started = time.perf_counter()
    fresh = run_full_batch(fresh_instance, fresh_resources)
    fetched = len(list(fresh_paths.stems.rglob("*.wav")))
    print(f"fresh checkout {time.perf_counter() - started:.2f}s: {fetched} stems from the bucket, 0 TTS calls")
    assert fresh.tts_calls == 0 and fresh.messages_written == first.messages_written
    assert fetched == len([n for n in files if "/stems/" in n and n.endswith(".wav")])
    for tid in ("followup-en", "seguimiento-es"):
        for dev in ("wyndham", "hilton-grand-vacations"):
            a = {r["path"]: r["sha256"] for r in read_manifest(manifest_path(paths.output, tid, dev))}
            b = {r["path"]: r["sha256"] for r in read_manifest(manifest_path(fresh_paths.output, tid, dev))}
            assert a == b and len(a) == len(NAMES)  # bit-identical messages from the bucket's stems


def test_gcs_down_or_503_is_a_clear_error_local_data_intact_and_retry_works(gcs, tmp_path):
    emulator, proxy = gcs
    paths, resources, instance = project(tmp_path / "a")
    run_full_batch(instance, resources)

    # a new name: its stems are looked up in the bucket first, which is down
    write_csv(paths.data / "names.csv", "name", [*NAMES, "Priya"])
    local = snapshot(paths)
    emulator.stop()
    with pytest.raises(BatchError) as err:
        run_full_batch(instance, resources)
    assert f"'{BUCKET}'" in str(err.value) and "GCS" in str(err.value)
    assert err.value.summary.tts_calls == 0
    assert {k: v for k, v in snapshot(paths).items() if k in local} == local
    emulator.start()

    # the stems and messages are made, then the delivery meets 503s past its retries
    run_full_batch(instance, {**resources, "gcs": DeliveryResource()})  # GCS off: the local batch as ever
    local = snapshot(paths)
    proxy.fail_next(10_000, 503)
    with pytest.raises(BatchError) as err:
        run_full_batch(instance, resources)
    assert "delivery" in str(err.value) and f"'{BUCKET}'" in str(err.value) and "ServiceUnavailable" in str(err.value)
    assert snapshot(paths) == local
    proxy.clear()
    again = run_full_batch(instance, resources)
    assert again.gcs_uploaded > 0 and again.tts_calls == 0
    files, objects = local_files(paths), remote()
    assert set(files) == set(objects) and all(objects[n].md5_hash == md5(p) for n, p in files.items())


@pytest.mark.slow
def test_pipeline_sensor_makes_delivery_the_last_stage_only_when_gcs_is_on(gcs, tmp_path):
    paths, resources, _ = project(tmp_path / "a", tts=OfflineTTSResource())
    base = {PIPELINE_TAG: "p1", DRIVER_TAG: "daemon", SCOPE_TAG: "full", TRIGGER_TAG: "nightly"}
    with dg.instance_for_test() as instance:
        results = drive_pipelines(build_defs(resources), instance, [datasets_request("p1", base)])
        assert all(r.success for r in results)
        stages = [r.dagster_run.tags[STAGE_TAG] for r in results]
        assert stages[0] == "datasets" and stages[-2:] == ["messages", "delivery"]
        assert set(local_files(paths)) == set(remote())
    with dg.instance_for_test() as instance:
        off = {**resources, "gcs": DeliveryResource()}
        base2 = {**base, PIPELINE_TAG: "p2"}
        results = drive_pipelines(build_defs(off), instance, [datasets_request("p2", base2)])
        assert [r.dagster_run.tags[STAGE_TAG] for r in results][-1] == "messages"


def test_gcs_off_delivery_and_report_say_so_and_do_nothing(tmp_path):
    paths, resources, instance = project(tmp_path / "a")
    resources = {**resources, "gcs": DeliveryResource()}
    summary = run_full_batch(instance, resources)
    assert summary.gcs_uploaded == 0 and summary.messages_written > 0
    md, passed = consistency(instance, resources)
    assert passed and "GCS is off" in md["status"]
    defs = build_defs(resources)
    result = defs.resolve_job_def("delivery_job").execute_in_process(instance=instance, partition_key="wyndham|followup-en")
    assert result.success
    [mat] = result.get_asset_materialization_events()
    assert "GCS is off" in mat.materialization.metadata["status"].value
    assert repair(instance, resources, dry_run=False) == {"enabled": False}


def test_erasing_a_person_deletes_the_bucket_copies_too(gcs, tmp_path):
    paths, resources, instance = project(tmp_path / "a")
    run_full_batch(instance, resources)
    key = next(i["key"] for i in json.loads((paths.datasets / "names.json").read_text())["items"] if i["display"] == "Maria")
    assert any(n.endswith(f"/{key}.wav") for n in remote())
    result = (
        build_defs(resources)
        .resolve_job_def("erase_name_job")
        .execute_in_process(instance=instance, run_config={"ops": {"erase_name": {"config": {"name": key}}}})
    )
    assert result.success
    objects = remote()
    assert set(objects) == set(local_files(paths))  # her messages and stems left the bucket, nothing else did
    assert not any(n.endswith(f"/{key}.wav") for n in objects)
    import io

    import pyarrow.parquet as pq

    for name, blob in objects.items():
        if name.endswith(".json"):
            assert b"Maria" not in blob.download_as_bytes(), name  # stem sidecars hold their text
        elif name.endswith(".parquet"):  # the re-sent manifests
            rows = pq.read_table(io.BytesIO(blob.download_as_bytes())).to_pylist()
            assert rows and all(r["name"] != "Maria" for r in rows), name
