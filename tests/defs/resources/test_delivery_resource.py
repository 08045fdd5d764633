"""The Dagster delivery resource (resources/gcs.py): off by default, configured from the
environment, the bucket as the stems' remote cache tier, its health check."""

from __future__ import annotations

import dagster as dg
import pytest

from hybrid_audio_dagster.core.delivery.errors import UnsafeObjectPath
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.defs.resources.gcs import GCS_OFF_MESSAGE, DeliveryResource, gcs_resource_from_env
from tests.support.delivery import (
    BUCKET,
    make_tree,
    sha,
    write_wav,
)

# -- the Dagster resource ---------------------------------------------------------------------


def test_gcs_off_every_operation_is_a_no_op(tmp_path, monkeypatch):
    for var in ("HYBRID_AUDIO_GCS_BUCKET", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(var, raising=False)
    import dagster_gcp

    def boom(self):
        raise AssertionError("no google client when GCS is off")

    monkeypatch.setattr(dagster_gcp.GCSResource, "get_client", boom)
    res = gcs_resource_from_env({})
    assert res.enabled is False and res.status_message == GCS_OFF_MESSAGE
    local = tmp_path / "a.wav"
    write_wav(local, 12)
    assert res.upload(local, "x").action == "off"
    got = res.download("x", tmp_path / "b.wav")
    assert got.action == "off" and not (tmp_path / "b.wav").exists()
    assert res.exists("x") is False and res.list_objects() == []
    sync = res.sync([InventoryEntry("name_stems", "a.wav", local)])
    assert sync.enabled is False and sync.summary()["uploaded"] == 0 and "GCS is off" in sync.message
    report = res.report([InventoryEntry("name_stems", "a.wav", local)])
    assert report.enabled is False and report.items == [] and "GCS is off" in report.to_markdown()
    assert res.repair([], dry_run=False).enabled is False
    health = res.health_check()
    assert (health.enabled, health.ok, health.message) == (False, True, GCS_OFF_MESSAGE)
    assert res.get_mirror() is None

    @dg.asset
    def delivered(gcs: DeliveryResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"gcs": gcs.status_message, "sync": gcs.sync([]).summary()})

    out = dg.materialize([delivered], resources={"gcs": res})
    assert out.success
    assert local.exists()


def test_resource_from_env_through_dagster(gcs, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_AUDIO_GCS_BUCKET", BUCKET)
    monkeypatch.setenv("HYBRID_AUDIO_GCS_PREFIX", "campaign-7")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    res = gcs_resource_from_env()
    assert isinstance(res.bucket, dg.EnvVar) and res.bucket.env_var_name == "HYBRID_AUDIO_GCS_BUCKET"
    assert res.enabled and res.layout.prefix == "campaign-7"
    health = res.health_check(write_probe=True)
    assert health.ok and health.can_list and health.write_probe, health
    assert health.endpoint == gcs.proxy.url and not health.missing_permissions
    assert not gcs.client().bucket(BUCKET).get_blob("campaign-7/.health")  # probe cleaned up
    entries, content = make_tree(tmp_path / "project")

    @dg.asset
    def delivered(gcs: DeliveryResource) -> dg.MaterializeResult:
        report = gcs.sync(entries)
        return dg.MaterializeResult(metadata={"sync": report.summary(), "uri": report.uris[gcs.layout.entry_object(entries[0])]})

    out = dg.materialize([delivered], resources={"gcs": res})
    assert out.success
    meta = out.asset_materializations_for_node("delivered")[0].metadata
    assert meta["uri"].value == f"gs://{BUCKET}/campaign-7/stems/offline/a0/sig-name-0.wav"
    assert meta["sync"].value["uploaded"] == 15
    assert gcs.raw("campaign-7/output/followup-en/wyndham/name-3.wav") == content["followup-en/wyndham/name-3.wav"]
    assert res.report(entries).is_clean
    assert len(res.list_objects()) == 15


def test_fetch_stem_is_the_remote_cache_tier(gcs, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_AUDIO_GCS_BUCKET", BUCKET)
    res = gcs_resource_from_env()
    src = tmp_path / "a" / "stems" / "offline" / "ab" / "abc.wav"
    data = write_wav(src, 13)
    res.sync([InventoryEntry("name_stems", "offline/ab/abc.wav", src)])
    fresh = tmp_path / "b" / "stems" / "offline" / "ab" / "abc.wav"
    got = res.fetch_stem("offline/ab/abc.wav", fresh, expected_sha256=sha(data))
    assert got is not None and fresh.read_bytes() == data
    assert res.fetch_stem("offline/ab/other.wav", tmp_path / "b" / "other.wav") is None
    assert not (tmp_path / "b" / "other.wav").exists()
    with pytest.raises(UnsafeObjectPath):
        res.fetch_stem("../../etc/passwd", tmp_path / "x")
    assert DeliveryResource().fetch_stem("offline/ab/abc.wav", tmp_path / "c.wav") is None


def test_health_check_reports_a_missing_bucket(gcs):
    health = DeliveryResource(bucket="absent-bucket").health_check()
    assert health.enabled and not health.ok
    assert health.error_type == "BucketNotFound" and "absent-bucket" in health.error
    gcs.proxy.fail_next(1000, 503)
    down = DeliveryResource(bucket=BUCKET, max_attempts=2, retry_budget_s=1.0).health_check()
    assert (down.ok, down.error_type) == (False, "TransientFailure")
