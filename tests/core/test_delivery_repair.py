"""The bucket consistency report and its repair, against a real GCS emulator on 127.0.0.1:
exactly what was damaged is listed, a dry run changes nothing, a repair makes it clean."""

from __future__ import annotations

import json

from hybrid_audio_dagster.core.delivery.consistency import build_report, write_jsonl
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.core.delivery.repair import execute_repair, plan_repair, repair
from tests.support.delivery import (
    BUCKET,
    local_state,
    make_tree,
    md5_b64,
    valid_file,
    write_wav,
)

# -- consistency report and repair ------------------------------------------------------------


def damage(gcs, mirror, entries, tmp_path):
    """Delete 2 remote objects, overwrite 2 with other bytes, delete 2 local files, delete
    one on both sides, and put one unknown stem in the bucket. Returns the expected sets."""
    client = gcs.client()
    bucket = client.bucket(BUCKET)
    obj = mirror.layout.entry_object
    deleted_remote = [entries[0], entries[10]]  # a name stem, a message
    corrupted = [entries[4], entries[14]]  # a developer stem, the manifest
    deleted_local = [entries[7], entries[11]]  # a script stem, a message
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
    assert names(report.by_state("remote_only")) == sorted([*(obj(e) for e in deleted_local), "hybrid-audio/stems/offline/qq/stray.wav"])
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
    assert result.counts() == {
        "upload_planned": 4,
        "download_planned": 2,
        "regenerate_planned": 1,
        "ignore_planned": 1,
        "missing_everywhere": 1,
    }
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
