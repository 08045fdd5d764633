"""GCS delivery (core/delivery + resources/gcs.py) against a real emulator on 127.0.0.1.

Every test that talks to GCS starts its own ``gcp-storage-emulator`` (tests/gcs_emulator.py)
with a fault-injecting proxy in front, and checks real bytes and checksums on both sides.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import google_crc32c
import pytest
from google.cloud import storage

from hybrid_audio_dagster.core.delivery import (
    BucketLayout,
    BucketNotFound,
    ChecksumMismatch,
    DeliveryError,
    GCSMirror,
    InventoryEntry,
    ObjectNotFound,
    PermissionDenied,
    RetrySettings,
    TransientFailure,
    UnsafeObjectPath,
    build_report,
    execute_repair,
    plan_repair,
    repair,
    write_jsonl,
)
from hybrid_audio_dagster.core.delivery.errors import redact
from hybrid_audio_dagster.resources.gcs import GCS_OFF_MESSAGE, DeliveryResource, gcs_resource_from_env

from .gcs_emulator import FaultProxy, GCSEmulator, emulator_behind_proxy

BUCKET = "ha-test"
FAST = RetrySettings(max_attempts=4, initial_wait_s=0.02, max_wait_s=0.1, budget_s=5.0, timeout_s=5.0)


# -- helpers ------------------------------------------------------------------------------


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def crc_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_wav(path: Path, seed: int, frames: int = 800) -> bytes:
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(b"".join(rnd.randrange(-3000, 3000).to_bytes(2, "little", signed=True) for _ in range(frames)))
    return path.read_bytes()


def is_wav(path: Path) -> bool:
    """The caller-supplied validator: a readable, non-empty WAV."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() > 0


def valid_file(path: Path) -> bool:
    return is_wav(path) if path.suffix == ".wav" else path.stat().st_size > 0


@dataclass
class Gcs:
    emulator: GCSEmulator
    proxy: FaultProxy

    def client(self) -> storage.Client:
        return storage.Client(project="test")

    def mirror(self, bucket: str = BUCKET, prefix: str = "hybrid-audio", retry: RetrySettings = FAST) -> GCSMirror:
        return GCSMirror(self.client(), bucket, prefix, retry=retry)

    def raw(self, object_name: str) -> bytes:
        return self.client().bucket(BUCKET).blob(object_name).download_as_bytes()

    def remote_state(self) -> dict[str, tuple[str, int]]:
        return {b.name: (b.md5_hash, b.generation) for b in self.client().list_blobs(BUCKET)}


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    with emulator_behind_proxy(tmp_path / "emulator", monkeypatch, BUCKET) as (emulator, proxy):
        yield Gcs(emulator, proxy)


def make_tree(root: Path) -> tuple[list[InventoryEntry], dict[str, bytes]]:
    """A local project: stems of three categories, messages and a manifest."""
    entries, content = [], {}
    specs = [("name_stems", f"offline/a{i}/sig-name-{i}.wav") for i in range(4)]
    specs += [("developer_stems", f"offline/d{i}/sig-dev-{i}.wav") for i in range(3)]
    specs += [("script_stems", f"offline/s{i}/sig-script-{i}.wav") for i in range(3)]
    specs += [("messages", f"followup-en/wyndham/name-{i}.wav") for i in range(4)]
    for seed, (category, rel) in enumerate(specs):
        local = root / ("stems" if category.endswith("stems") else "output") / rel
        content[rel] = write_wav(local, seed)
        entries.append(InventoryEntry(category, rel, local))
    manifest = root / "output" / "followup-en" / "wyndham" / "manifest.parquet"
    manifest.write_bytes(b"PAR1 fake manifest PAR1")
    content["followup-en/wyndham/manifest.parquet"] = manifest.read_bytes()
    entries.append(InventoryEntry("manifests", "followup-en/wyndham/manifest.parquet", manifest))
    return entries, content


def local_state(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


# -- layout (pure) --------------------------------------------------------------------------


def test_layout_mirrors_local_paths_below_the_prefix():
    layout = BucketLayout()
    assert layout.stem_object("offline/ab/abc.wav") == "hybrid-audio/stems/offline/ab/abc.wav"
    assert layout.message_object("followup-en", "wyndham", "john") == "hybrid-audio/output/followup-en/wyndham/john.wav"
    assert layout.manifest_object("followup-en", "wyndham") == "hybrid-audio/output/followup-en/wyndham/manifest.parquet"
    assert layout.object_for("developer_stems", "x/y.wav") == "hybrid-audio/stems/x/y.wav"
    assert BucketLayout("").stem_object("a.wav") == "stems/a.wav"
    assert BucketLayout("team/x/").output_object("t/d/n.wav") == "team/x/output/t/d/n.wav"
    assert layout.split("hybrid-audio/output/t/d/n.wav") == ("output", "t/d/n.wav")
    assert layout.split("other/stems/a.wav") is None


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x.wav", "a/../../x", "a\\b.wav", "a//b", "./a", "a/./b",
                                 "C:/x", "a/\x00b", "a\nb", "a/.."])
def test_layout_refuses_unsafe_relative_paths(bad):
    with pytest.raises(UnsafeObjectPath):
        BucketLayout().stem_object(bad)
    with pytest.raises(UnsafeObjectPath):
        InventoryEntry("name_stems", bad, Path("/tmp/x"))


def test_layout_refuses_unknown_category_and_slash_in_slugs():
    with pytest.raises(ValueError, match="unknown category"):
        InventoryEntry("voices", "a.wav", Path("/tmp/a.wav"))
    with pytest.raises(UnsafeObjectPath):
        BucketLayout().message_object("t", "dev/../x", "n")


def test_redact_removes_tokens_and_query_strings():
    text = redact("GET https://x/o?access_token=SECRET123&alt=media failed; Authorization: Bearer SECRET456 token=abc")
    assert "SECRET123" not in text and "abc" not in text.split("token=")[-1]
    assert "SECRET456" not in text and "Authorization" in text


def test_compare_is_pure_and_uses_whichever_checksum_the_bucket_has():
    from hybrid_audio_dagster.core.delivery import LocalFile, RemoteObject, compare
    from hybrid_audio_dagster.core.delivery.layout import checksums_of_bytes

    layout = BucketLayout()
    a, b = checksums_of_bytes(b"a"), checksums_of_bytes(b"b")
    local = [LocalFile(InventoryEntry("name_stems", f"x/{i}.wav", Path(f"/p/{i}.wav")), a) for i in range(4)]
    remote = [
        RemoteObject(layout.stem_object("x/0.wav"), 1, None, a.crc32c, 1),   # composite: crc32c only, equal
        RemoteObject(layout.stem_object("x/1.wav"), 1, None, b.crc32c, 1),   # crc32c only, differs
        RemoteObject(layout.stem_object("x/2.wav"), 1, None, None, 1),       # no checksum: cannot be trusted
        RemoteObject(layout.stem_object("x/3.wav"), 2, a.md5, a.crc32c, 1),  # same hashes, other size
        RemoteObject("elsewhere/stems/x/9.wav", 1, a.md5, a.crc32c, 1),      # outside the prefix: ignored
    ]
    report = compare(local, remote, layout, bucket="bk")
    assert [i.state for i in report.items] == ["in_sync", "mismatched", "mismatched", "mismatched"]
    assert report.counts()["name_stems"]["mismatched"] == 3


# -- upload / skip / verify ---------------------------------------------------------------------


def test_upload_then_skip_then_reupload_after_change(gcs, tmp_path):
    mirror = gcs.mirror()
    local = tmp_path / "stems" / "offline" / "ab" / "abc.wav"
    data = write_wav(local, 1)
    name = mirror.layout.stem_object("offline/ab/abc.wav")

    first = mirror.upload(local, name, category="name_stems", relative_path="offline/ab/abc.wav")
    assert first.action == "uploaded"
    assert first.uri == f"gs://{BUCKET}/hybrid-audio/stems/offline/ab/abc.wav"
    assert set(first.verified_by) == {"md5", "crc32c"}
    assert gcs.raw(name) == data
    blob = gcs.client().bucket(BUCKET).get_blob(name)
    assert (blob.md5_hash, blob.crc32c, blob.size) == (md5_b64(data), crc_b64(data), len(data))
    assert blob.metadata == {"sha256": sha(data), "category": "name_stems", "relative_path": "offline/ab/abc.wav"}
    assert blob.content_type == "audio/wav"
    generation = blob.generation

    before = gcs.proxy.requests
    second = mirror.upload(local, name)
    assert second.action == "skipped" and second.uri == first.uri
    assert gcs.proxy.requests - before == 1  # one metadata read, no upload
    assert gcs.client().bucket(BUCKET).get_blob(name).generation == generation

    new = write_wav(local, 2)
    assert new != data
    third = mirror.upload(local, name)
    assert third.action == "uploaded" and third.md5 == md5_b64(new)
    assert gcs.raw(name) == new


def test_server_refuses_bytes_that_differ_from_the_declared_checksums(gcs, tmp_path, monkeypatch):
    """The upload declares the md5/crc32c computed locally: bytes that changed after hashing
    are refused by the server, and nothing lands in the bucket."""
    import hybrid_audio_dagster.core.delivery.mirror as mirror_mod

    mirror = gcs.mirror()
    local = tmp_path / "a.wav"
    write_wav(local, 3)
    real = mirror_mod.file_checksums(local)
    monkeypatch.setattr(mirror_mod, "file_checksums", lambda p: real)
    write_wav(local, 4)  # the file changes between hashing and sending
    with pytest.raises(DeliveryError) as err:
        mirror.upload(local, "hybrid-audio/stems/a.wav")
    assert BUCKET in str(err.value)
    assert not mirror.exists("hybrid-audio/stems/a.wav")


def test_list_by_prefix_and_exists(gcs, tmp_path):
    mirror = gcs.mirror()
    entries, _ = make_tree(tmp_path)
    mirror.sync(entries)
    stems = [o.name for o in mirror.list(mirror.layout.stems_root)]
    assert len(stems) == 10 and all(n.startswith("hybrid-audio/stems/") for n in stems)
    assert stems == sorted(stems)
    msgs = mirror.list("hybrid-audio/output/followup-en/wyndham/name-")
    assert [o.name.rsplit("/", 1)[-1] for o in msgs] == [f"name-{i}.wav" for i in range(4)]
    assert len(mirror.list()) == 15
    assert mirror.list("hybrid-audio/nothing-here/") == []
    assert mirror.exists("hybrid-audio/output/followup-en/wyndham/name-2.wav")
    assert not mirror.exists("hybrid-audio/output/followup-en/wyndham/name-9.wav")
    obj = mirror.stat("hybrid-audio/stems/offline/d1/sig-dev-1.wav")
    assert obj.metadata["category"] == "developer_stems"
    assert obj.sha256 == sha((tmp_path / "stems/offline/d1/sig-dev-1.wav").read_bytes())


# -- download ------------------------------------------------------------------------------


def test_download_is_verified_and_atomic(gcs, tmp_path):
    mirror = gcs.mirror()
    src = tmp_path / "src.wav"
    data = write_wav(src, 5)
    name = "hybrid-audio/stems/offline/x/src.wav"
    mirror.upload(src, name)

    dest_dir = tmp_path / "fresh" / "stems" / "offline" / "x"
    dest = dest_dir / "src.wav"
    got = mirror.download(name, dest, expected_sha256=sha(data))
    assert dest.read_bytes() == data
    assert got.sha256 == sha(data) and set(got.verified_by) == {"md5", "crc32c", "sha256"}

    # a wrong expected sha256: nothing under the final name, no temp file left
    other = dest_dir / "other.wav"
    with pytest.raises(ChecksumMismatch, match="expected sha256"):
        mirror.download(name, other, expected_sha256="0" * 64)
    assert not other.exists()
    assert sorted(p.name for p in dest_dir.iterdir()) == ["src.wav"]

    # bytes rotting in the bucket behind the server's metadata: detected, local copy kept
    stored = gcs.emulator.object_file(BUCKET, name)
    raw = bytearray(stored.read_bytes())
    raw[100] ^= 0xFF
    stored.write_bytes(bytes(raw))
    dest.write_bytes(b"previous good copy")
    with pytest.raises(ChecksumMismatch, match="server reports"):
        mirror.download(name, dest)
    assert dest.read_bytes() == b"previous good copy"
    assert sorted(p.name for p in dest_dir.iterdir()) == ["src.wav"]


def test_download_of_a_missing_object(gcs, tmp_path):
    with pytest.raises(ObjectNotFound, match=f"gs://{BUCKET}/hybrid-audio/stems/nope.wav"):
        gcs.mirror().download("hybrid-audio/stems/nope.wav", tmp_path / "nope.wav")
    assert not (tmp_path / "nope.wav").exists()


# -- sync ----------------------------------------------------------------------------------


def test_sync_uploads_what_differs_and_nothing_the_second_time(gcs, tmp_path):
    mirror = gcs.mirror()
    entries, content = make_tree(tmp_path)
    missing = InventoryEntry("name_stems", "offline/zz/gone.wav", tmp_path / "stems/offline/zz/gone.wav")
    first = mirror.sync([*entries, entries[0], missing])  # a duplicate entry counts once
    assert (len(first.uploaded), len(first.skipped), first.failed) == (15, 0, [])
    assert first.missing_local == [missing]
    for e in entries:
        assert gcs.raw(mirror.layout.entry_object(e)) == content[e.relative_path]
    assert first.uris[mirror.layout.entry_object(entries[0])] == f"gs://{BUCKET}/" + mirror.layout.entry_object(entries[0])

    before = gcs.proxy.requests
    second = mirror.sync(entries)
    assert (len(second.uploaded), len(second.skipped)) == (0, 15)
    assert gcs.proxy.requests - before == 2  # one listing per root, no per-object request
    assert second.summary()["uploaded"] == 0

    write_wav(entries[3].local_path, 99)
    third = mirror.sync(entries)
    assert [r.object_name for r in third.uploaded] == [mirror.layout.entry_object(entries[3])]


# -- consistency report and repair ------------------------------------------------------------


def damage(gcs, mirror, entries, tmp_path):
    """Delete 2 remote objects, overwrite 2 with other bytes, delete 2 local files, delete
    one on both sides, and put one unknown stem in the bucket. Returns the expected sets."""
    client = gcs.client()
    bucket = client.bucket(BUCKET)
    obj = mirror.layout.entry_object
    deleted_remote = [entries[0], entries[10]]          # a name stem, a message
    corrupted = [entries[4], entries[14]]               # a developer stem, the manifest
    deleted_local = [entries[7], entries[11]]           # a script stem, a message
    both = entries[1]
    for e in (*deleted_remote, both):
        bucket.blob(obj(e)).delete()
    for e in corrupted:
        bucket.blob(obj(e)).upload_from_string(b"not the same bytes at all")
    originals = {e.relative_path: e.local_path.read_bytes() for e in deleted_local}
    for e in (*deleted_local, both):
        e.local_path.unlink()
    stray = bucket.blob("hybrid-audio/stems/offline/qq/stray.wav")
    stray.metadata = {"category": "name_stems"}
    stray.upload_from_string(write_wav(tmp_path / "stray-src.wav", 77))
    return deleted_remote, corrupted, deleted_local, both, originals


def names(items):
    return sorted(i.object_name for i in items)


def test_report_lists_exactly_what_was_damaged(gcs, tmp_path):
    mirror = gcs.mirror()
    entries, _ = make_tree(tmp_path / "project")
    mirror.sync(entries)
    clean = build_report(mirror, entries)
    assert clean.is_clean and clean.summary()["in_sync"] == 15
    assert clean.counts()["name_stems"]["in_sync"] == 4

    deleted_remote, corrupted, deleted_local, both, _ = damage(gcs, mirror, entries, tmp_path)
    report = build_report(mirror, entries)
    obj = mirror.layout.entry_object
    assert names(report.by_state("local_only")) == sorted(obj(e) for e in deleted_remote)
    assert names(report.by_state("mismatched")) == sorted(obj(e) for e in corrupted)
    assert names(report.by_state("remote_only")) == sorted(
        [*(obj(e) for e in deleted_local), "hybrid-audio/stems/offline/qq/stray.wav"])
    assert names(report.by_state("missing")) == [obj(both)]
    assert report.summary() == {"in_sync": 8, "local_only": 2, "remote_only": 3, "mismatched": 2, "missing": 1}
    counts = report.counts()
    assert counts["name_stems"] == {"in_sync": 2, "local_only": 1, "remote_only": 1, "mismatched": 0, "missing": 1}
    assert counts["messages"] == {"in_sync": 2, "local_only": 1, "remote_only": 1, "mismatched": 0, "missing": 0}
    assert counts["developer_stems"]["mismatched"] == 1 and counts["manifests"]["mismatched"] == 1
    assert counts["script_stems"]["remote_only"] == 1
    stray = next(i for i in report.items if i.object_name.endswith("stray.wav"))
    assert (stray.category, stray.local_path) == ("name_stems", None)
    bad = next(i for i in report.by_state("mismatched") if i.category == "manifests")
    assert bad.remote_md5 == md5_b64(b"not the same bytes at all") != bad.local_md5
    assert not report.is_clean

    md = report.to_markdown()
    assert "| name_stems | 2 | 1 | 1 | 0 | 1 | 5 |" in md
    assert "| messages | 2 | 1 | 1 | 0 | 0 | 4 |" in md
    assert f"`{obj(corrupted[0])}`" in md

    out = write_jsonl(report, tmp_path / "logs" / "gcs_consistency.jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["record"] == "summary" and lines[0]["clean"] is False
    assert lines[0]["totals"]["mismatched"] == 2
    assert len(lines) == 1 + 16
    assert {ln["object_name"] for ln in lines[1:] if ln["state"] == "local_only"} == {obj(e) for e in deleted_remote}
    assert [p.name for p in out.parent.iterdir()] == ["gcs_consistency.jsonl"]  # no temp file left


def test_repair_dry_run_changes_nothing(gcs, tmp_path):
    mirror = gcs.mirror()
    root = tmp_path / "project"
    entries, _ = make_tree(root)
    mirror.sync(entries)
    damage(gcs, mirror, entries, tmp_path)
    remote_before, local_before = gcs.remote_state(), local_state(root)

    result = repair(mirror, entries, dry_run=True, validate=valid_file)
    assert result.dry_run and result.after is None
    assert gcs.remote_state() == remote_before
    assert local_state(root) == local_before
    assert result.counts() == {"upload_planned": 4, "download_planned": 2, "regenerate_planned": 1,
                               "ignore_planned": 1, "missing_everywhere": 1}
    assert all(o.status == "planned" for o in result.outcomes)


def test_repair_makes_the_report_clean(gcs, tmp_path):
    mirror = gcs.mirror()
    root = tmp_path / "project"
    entries, content = make_tree(root)
    mirror.sync(entries)
    deleted_remote, corrupted, deleted_local, both, originals = damage(gcs, mirror, entries, tmp_path)
    # a local message that no longer passes validation, while the bucket's copy does
    broken = entries[12]
    broken.local_path.write_bytes(b"RIFF truncated")
    # and a local-only stem that fails validation: it has to be regenerated
    junk = InventoryEntry("script_stems", "offline/jj/junk.wav", root / "stems/offline/jj/junk.wav")
    junk.local_path.parent.mkdir(parents=True)
    junk.local_path.write_bytes(b"garbage")
    all_entries = [*entries, junk]

    result = repair(mirror, all_entries, dry_run=False, validate=valid_file)
    assert result.ok, [o.detail for o in result.outcomes if o.status == "failed"]
    obj = mirror.layout.entry_object
    assert names(result.missing_everywhere) == sorted([obj(both), obj(junk)])
    assert result.counts()["upload_done"] == 4  # 2 deleted remotely + 2 corrupted remotely (local wins)
    assert result.counts()["download_done"] == 3  # 2 deleted locally + the broken local message

    for e in deleted_local:  # restored byte for byte
        assert e.local_path.read_bytes() == originals[e.relative_path]
    assert broken.local_path.read_bytes() == content[broken.relative_path]
    for e in (*deleted_remote, *corrupted):
        assert gcs.raw(obj(e)) == e.local_path.read_bytes()
    # what is left is exactly what the stem assets must regenerate
    after = result.after
    assert names(after.by_state("missing")) == [obj(both)]
    assert names(after.by_state("local_only")) == [obj(junk)]
    assert names(after.by_state("remote_only")) == ["hybrid-audio/stems/offline/qq/stray.wav"]  # unknown: left alone
    assert after.summary()["mismatched"] == 0
    # once regenerated (here: rewritten) the next report is clean, the stray aside
    write_wav(both.local_path, 1234)
    write_wav(junk.local_path, 4321)
    mirror.sync(all_entries)
    final = build_report(mirror, all_entries)
    assert [i.state for i in final.items if i.state != "in_sync"] == ["remote_only"]


def test_repair_downloads_known_remote_only_objects_through_locate(gcs, tmp_path):
    mirror = gcs.mirror()
    root = tmp_path / "fresh"
    src = tmp_path / "elsewhere" / "stems" / "offline" / "k1" / "known.wav"
    data = write_wav(src, 8)
    mirror.sync([InventoryEntry("name_stems", "offline/k1/known.wav", src)])
    report = build_report(mirror, [])
    plan = plan_repair(report, locate=lambda category, rel: root / "stems" / rel if category == "name_stems" else None)
    assert plan.counts()["download"] == 1
    result = execute_repair(mirror, plan, dry_run=False)
    assert result.ok and (root / "stems/offline/k1/known.wav").read_bytes() == data


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
    mirror = gcs.mirror(retry=RetrySettings(max_attempts=3, initial_wait_s=0.02, max_wait_s=0.05, budget_s=2.0,
                                            timeout_s=2.0))
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
    assert dest.read_bytes() == b"keep me" and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dl"))== []
    for e in entries:
        assert e.local_path.read_bytes() == content[e.relative_path]

    gcs.emulator.start()  # same port, same data on disk
    report = mirror.sync(entries)
    assert (len(report.uploaded), len(report.skipped)) == (10, 5)

    # an outage shorter than the retry budget is ridden out without an error
    patient = gcs.mirror(retry=RetrySettings(max_attempts=30, initial_wait_s=0.1, max_wait_s=0.3, budget_s=20.0,
                                             timeout_s=2.0))
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
    for call in (lambda: mirror.upload(local, "hybrid-audio/stems/a.wav"),
                 lambda: mirror.exists("hybrid-audio/stems/a.wav"),
                 lambda: mirror.list(),
                 lambda: mirror.sync([InventoryEntry("name_stems", "a.wav", local)]),
                 lambda: mirror.download("hybrid-audio/stems/a.wav", tmp_path / "b.wav")):
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
        return dg.MaterializeResult(metadata={"sync": report.summary(),
                                              "uri": report.uris[gcs.layout.entry_object(entries[0])]})

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
