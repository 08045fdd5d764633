"""GCS delivery (core/delivery + resources/gcs.py) against a real emulator on 127.0.0.1:
the layout, upload / skip / verify, download and sync.

Every test that talks to GCS starts its own ``gcp-storage-emulator`` (testkit/gcs_emulator.py)
with a fault-injecting proxy in front, and checks real bytes and checksums on both sides.

The consistency report and repair are ``test_delivery_repair.py``, failures
``test_delivery_failures.py``, the Dagster resource ``test_delivery_resource.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_audio_dagster.core.delivery.errors import ChecksumMismatch, DeliveryError, ObjectNotFound, UnsafeObjectPath, redact
from hybrid_audio_dagster.core.delivery.layout import BucketLayout, InventoryEntry
from tests.support.delivery import (
    BUCKET,
    crc_b64,
    make_tree,
    md5_b64,
    sha,
    write_wav,
)

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


@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../x.wav", "a/../../x", "a\\b.wav", "a//b", "./a", "a/./b", "C:/x", "a/\x00b", "a\nb", "a/.."]
)
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
    from hybrid_audio_dagster.core.delivery.consistency import LocalFile, compare
    from hybrid_audio_dagster.core.delivery.layout import checksums_of_bytes
    from hybrid_audio_dagster.core.delivery.records import RemoteObject

    layout = BucketLayout()
    a, b = checksums_of_bytes(b"a"), checksums_of_bytes(b"b")
    local = [LocalFile(InventoryEntry("name_stems", f"x/{i}.wav", Path(f"/p/{i}.wav")), a) for i in range(4)]
    remote = [
        RemoteObject(layout.stem_object("x/0.wav"), 1, None, a.crc32c, 1),  # composite: crc32c only, equal
        RemoteObject(layout.stem_object("x/1.wav"), 1, None, b.crc32c, 1),  # crc32c only, differs
        RemoteObject(layout.stem_object("x/2.wav"), 1, None, None, 1),  # no checksum: cannot be trusted
        RemoteObject(layout.stem_object("x/3.wav"), 2, a.md5, a.crc32c, 1),  # same hashes, other size
        RemoteObject("elsewhere/stems/x/9.wav", 1, a.md5, a.crc32c, 1),  # outside the prefix: ignored
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
