"""GCS failures against a real emulator behind a fault-injecting proxy: transient answers
retried, persistent 503, uploads failing mid-sync, the emulator down, a missing bucket,
permission denied: a clear error naming the bucket, local files intact, the next sync recovers."""

from __future__ import annotations

import threading

import pytest

from hybrid_audio_dagster.core.delivery.errors import BucketNotFound, PermissionDenied, TransientFailure
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.core.delivery.records import RetrySettings
from tests.support.delivery import (
    BUCKET,
    FAST,
    make_tree,
    write_wav,
)

# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429, 500])
def test_transient_answers_are_retried(gcs, tmp_path, status):
    mirror = gcs.mirror()
    local = tmp_path / "a.wav"
    data = write_wav(local, 9)
    mirror.check_bucket()
    gcs.proxy.fail_next(2, status)
    result = mirror.upload(local, "hybrid-audio/stems/a.wav")
    assert result.action == "uploaded"
    assert gcs.proxy.faults_served == 2
    assert gcs.raw("hybrid-audio/stems/a.wav") == data


def test_persistent_503_is_a_clear_error_and_the_next_sync_recovers(gcs, tmp_path):
    mirror = gcs.mirror()
    entries, content = make_tree(tmp_path / "project")
    gcs.proxy.fail_next(1000, 503)
    with pytest.raises(TransientFailure) as err:
        mirror.sync(entries)
    assert BUCKET in str(err.value) and "4 attempts" in str(err.value) and err.value.status == 503
    assert gcs.proxy.faults_served == FAST.max_attempts
    for e in entries:
        assert e.local_path.read_bytes() == content[e.relative_path]
    gcs.proxy.clear()
    assert len(mirror.sync(entries).uploaded) == 15


def test_upload_failures_mid_sync_leave_local_files_and_are_picked_up_next_time(gcs, tmp_path):
    mirror = gcs.mirror(retry=RetrySettings(max_attempts=1, timeout_s=5.0))
    entries, content = make_tree(tmp_path / "project")
    mirror.check_bucket()
    # the listing passes, then the next 3 requests (uploads) fail once each, never retried
    orig_list = mirror.list
    calls = []

    def list_then_fail(prefix=None):
        out = orig_list(prefix)
        calls.append(prefix)
        if len(calls) == 2:  # both roots listed: the next 3 object requests are uploads
            gcs.proxy.fail_next(3, 503)
        return out

    mirror.list = list_then_fail
    report = mirror.sync(entries, workers=1)
    assert len(report.failed) == 3 and len(report.uploaded) == 12
    assert all("503" in msg for _, msg in report.failed)
    for e in entries:
        assert e.local_path.read_bytes() == content[e.relative_path]
    mirror.list = orig_list
    again = mirror.sync(entries)
    assert (len(again.uploaded), len(again.skipped)) == (3, 12)


def test_emulator_down_is_a_clear_error_local_data_intact_and_retry_works_once_back(gcs, tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.emulator.url)  # straight to the port: refused when down
    mirror = gcs.mirror(retry=RetrySettings(max_attempts=3, initial_wait_s=0.02, max_wait_s=0.05, budget_s=2.0, timeout_s=2.0))
    entries, content = make_tree(tmp_path / "project")
    mirror.sync(entries[:5])
    gcs.emulator.stop()

    with pytest.raises(TransientFailure) as err:
        mirror.sync(entries)
    assert BUCKET in str(err.value) and "attempts" in str(err.value)
    with pytest.raises(TransientFailure):
        mirror.upload(entries[6].local_path, mirror.layout.entry_object(entries[6]))
    dest = tmp_path / "dl.wav"
    dest.write_bytes(b"keep me")
    with pytest.raises(TransientFailure):
        mirror.download(mirror.layout.entry_object(entries[0]), dest)
    assert dest.read_bytes() == b"keep me" and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dl")) == []
    for e in entries:
        assert e.local_path.read_bytes() == content[e.relative_path]

    gcs.emulator.start()  # same port, same data on disk
    report = mirror.sync(entries)
    assert (len(report.uploaded), len(report.skipped)) == (10, 5)

    # an outage shorter than the retry budget is ridden out without an error
    patient = gcs.mirror(retry=RetrySettings(max_attempts=30, initial_wait_s=0.1, max_wait_s=0.3, budget_s=20.0, timeout_s=2.0))
    patient.check_bucket()
    gcs.emulator.stop()
    timer = threading.Timer(0.8, gcs.emulator.start)
    timer.start()
    try:
        write_wav(entries[2].local_path, 555)
        assert patient.upload(entries[2].local_path, patient.layout.entry_object(entries[2])).action == "uploaded"
    finally:
        timer.join()
    assert gcs.raw(patient.layout.entry_object(entries[2])) == entries[2].local_path.read_bytes()


def test_missing_bucket_is_an_error_naming_the_bucket(gcs, tmp_path):
    mirror = gcs.mirror(bucket="no-such-bucket")
    local = tmp_path / "a.wav"
    write_wav(local, 10)
    for call in (
        lambda: mirror.upload(local, "hybrid-audio/stems/a.wav"),
        lambda: mirror.exists("hybrid-audio/stems/a.wav"),
        lambda: mirror.list(),
        lambda: mirror.sync([InventoryEntry("name_stems", "a.wav", local)]),
        lambda: mirror.download("hybrid-audio/stems/a.wav", tmp_path / "b.wav"),
    ):
        with pytest.raises(BucketNotFound, match="'no-such-bucket' does not exist"):
            call()
    assert gcs.proxy.faults_served == 0
    assert local.exists() and not (tmp_path / "b.wav").exists()


def test_permission_denied_is_not_retried_and_names_the_bucket(gcs, tmp_path):
    mirror = gcs.mirror()
    local = tmp_path / "a.wav"
    write_wav(local, 11)
    mirror.check_bucket()
    gcs.proxy.fail_next(1, 403)
    before = gcs.proxy.requests
    with pytest.raises(PermissionDenied, match=f"bucket '{BUCKET}'"):
        mirror.upload(local, "hybrid-audio/stems/a.wav")
    assert gcs.proxy.requests - before == 1
    gcs.proxy.fail_next(1, 401)
    with pytest.raises(PermissionDenied):
        mirror.list()
