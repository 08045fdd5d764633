"""A no-op batch skips an unchanged messages partition whole (its fingerprint, see
core/messages/fingerprint.py), and never skips one that changed: a deleted file, a name
removed or renamed, a new stem, a restricted or partial run, a dead writer's spool."""

import os
import pickle
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.delivery.inventory import stamp_manifest
from hybrid_audio_dagster.core.messages.fingerprint import unchanged_partition
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, manifest_path, read_fingerprint, read_manifest
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.defs.metadata_index import latest_metadata
from hybrid_audio_dagster.defs.partitions import message_partition_dims, message_partition_key
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import write_csv
from tests.support.campaign import all_messages_verified, batched_campaign, calls, run_requests

NAMES = ["John", "Maria", "Zoë"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham"]


@pytest.fixture
def camp(tmp_path: Path):
    camp = batched_campaign(tmp_path, NAMES, DEVELOPERS)
    assert camp.first.messages_written == camp.first.messages_skipped + camp.first.messages_written > 0
    return camp


def partitions(camp) -> list[str]:
    return [
        message_partition_key(t, d)
        for t in camp.instance.get_dynamic_partitions("templates")
        for d in camp.instance.get_dynamic_partitions("developers")
    ]


def manifests(camp) -> dict[str, Path]:
    return {k: manifest_path(camp.paths.output, *message_partition_dims(k)) for k in partitions(camp)}


def latest(camp) -> dict[str, dict]:
    return latest_metadata(camp.instance, dg.AssetKey("messages"), partitions(camp))


def wavs(camp) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in camp.paths.output.rglob("*.wav")}


def test_a_no_op_batch_skips_every_partition_whole_and_records_the_same_picture(camp):
    before_md = latest(camp)
    before = {k: p.stat().st_mtime_ns for k, p in manifests(camp).items()}
    assert all(read_fingerprint(p)[0] for p in manifests(camp).values())  # the first batch vouched for them
    files = wavs(camp)
    again = run_full_batch(camp.instance, camp.resources)
    assert again.messages_written == 0 and again.messages_skipped == len(NAMES) * len(before)
    md = latest(camp)
    assert all(m["unchanged_partition"] is True for m in md.values())
    assert {k: p.stat().st_mtime_ns for k, p in manifests(camp).items()} == before  # no manifest rewritten
    assert wavs(camp) == files
    for key, m in md.items():  # the same picture as the run that wrote them
        for label in ("messages", "audio_seconds", "preview", "timing_of", "template_signature", "status"):
            assert m[label] == before_md[key][label], (key, label)
    assert all_messages_verified(camp.paths, camp.instance) == len(NAMES) * len(before)


def test_a_deleted_message_sends_only_its_partition_down_the_per_message_path(camp):
    victim_key = partitions(camp)[0]
    victim = manifests(camp)[victim_key].parent / "john.wav"
    victim.unlink()
    again = run_full_batch(camp.instance, camp.resources)
    assert again.messages_written == 1 and again.tts_calls == 0
    md = latest(camp)
    assert md[victim_key]["unchanged_partition"] is False and md[victim_key]["written"] == 1
    assert all(m["unchanged_partition"] is True for k, m in md.items() if k != victim_key)
    assert victim.is_file() and read_fingerprint(manifests(camp)[victim_key])[0]
    third = run_full_batch(camp.instance, camp.resources)
    assert third.messages_written == 0 and all(m["unchanged_partition"] for m in latest(camp).values())


def test_a_replaced_message_file_is_rebuilt_not_skipped(camp):
    key = partitions(camp)[-1]
    wav = manifests(camp)[key].parent / "maria.wav"
    data = wav.read_bytes()
    wav.write_bytes(data[:-2] + b"\x00\x00")  # same size, new mtime
    again = run_full_batch(camp.instance, camp.resources)
    assert again.messages_written == 1 and latest(camp)[key]["unchanged_partition"] is False
    assert all_messages_verified(camp.paths, camp.instance) == len(NAMES) * len(partitions(camp))


def test_a_removed_name_and_a_renamed_one_change_every_fingerprint(camp):
    before = {k: read_fingerprint(p)[0] for k, p in manifests(camp).items()}
    write_csv(camp.root / "data" / "names.csv", "name", ["John", "Mária"])  # Zoë gone, Maria respelled
    again = run_full_batch(camp.instance, camp.resources)
    md = latest(camp)
    assert not any(m["unchanged_partition"] for m in md.values())
    after = {k: read_fingerprint(p)[0] for k, p in manifests(camp).items()}
    assert all(after[k] and after[k] != before[k] for k in before)
    assert {r["name_key"] for p in manifests(camp).values() for r in read_manifest(p, columns=["name_key"])} == {"john", "maria"}
    assert again.tts_calls > 0  # the respelled name is spoken anew
    assert all_messages_verified(camp.paths, camp.instance) == 2 * len(partitions(camp))


def test_an_on_demand_run_for_one_name_leaves_no_fingerprint_and_the_next_batch_restores_it(camp):
    key = partitions(camp)[0]
    (manifests(camp)[key].parent / "john.wav").unlink()
    defs = build_defs(camp.resources)
    [run] = run_requests(
        defs,
        camp.instance,
        [
            dg.RunRequest(
                job_name="messages_job",
                partition_key=key,
                run_config={"ops": {"messages": {"config": {"names": ["john"]}}}},
            )
        ],
    )
    assert run.success
    # the run planned one name: it can't vouch for the others, so the manifest carries none
    assert read_fingerprint(manifests(camp)[key])[0] is None
    again = run_full_batch(camp.instance, camp.resources)
    assert again.messages_written == 0
    md = latest(camp)
    assert md[key]["unchanged_partition"] is False and md[key]["skipped"] == len(NAMES)
    assert read_fingerprint(manifests(camp)[key])[0]
    assert all(m["unchanged_partition"] for m in latest_after_noop(camp).values())


def latest_after_noop(camp) -> dict[str, dict]:
    run_full_batch(camp.instance, camp.resources)
    return latest(camp)


@pytest.mark.slow
def test_a_partial_partition_carries_no_fingerprint_until_it_is_whole(camp, monkeypatch):
    key = partitions(camp)[0]
    (manifests(camp)[key].parent / "zoe.wav").unlink()
    from hybrid_audio_dagster.core.messages import build

    real = build.build_message

    def fail_for_zoe(plan, load):
        if plan.name_key == "zoe":
            raise OSError(5, "Input/output error (injected)")
        return real(plan, load)

    monkeypatch.setattr(build, "build_message", fail_for_zoe)
    partial = run_full_batch(camp.instance, camp.resources)
    assert partial.messages_failed == 1
    assert latest(camp)[key]["status"].startswith("partial")
    assert read_fingerprint(manifests(camp)[key])[0] is None  # partial: the next run checks every message
    monkeypatch.setattr(build, "build_message", real)
    healed = run_full_batch(camp.instance, camp.resources)
    assert healed.messages_written == 1 and read_fingerprint(manifests(camp)[key])[0]
    assert all_messages_verified(camp.paths, camp.instance) == len(NAMES) * len(partitions(camp))


@pytest.mark.slow
def test_a_changed_voice_changes_every_fingerprint(camp):
    import json

    tpl = camp.paths.templates / "followup-en.json"
    data = json.loads(tpl.read_text())
    data["voice"]["speed"] = 1.2
    tpl.write_text(json.dumps(data))
    n = len(calls(camp.log))
    again = run_full_batch(camp.instance, camp.resources)
    assert len(calls(camp.log)) > n
    assert again.messages_written == len(NAMES) * len(DEVELOPERS)  # followup-en's partitions only
    md = latest(camp)
    assert {k for k, m in md.items() if not m["unchanged_partition"]} == {k for k in md if message_partition_dims(k)[0] == "followup-en"}


def test_a_spool_left_by_a_dead_writer_is_never_skipped_past(camp):
    key = partitions(camp)[0]
    mpath = manifests(camp)[key]
    fingerprint, rows = read_fingerprint(mpath)
    assert unchanged_partition(mpath, str(camp.paths.output), fingerprint, expected_rows=rows, preview_rows=3) is not None
    # a writer that died after writing one message anew: its row is only in its spool
    row = read_manifest(mpath)[0]
    wav = camp.paths.output / row["path"]
    os.utime(wav, ns=(row["mtime_ns"] + 10**9, row["mtime_ns"] + 10**9))
    st = wav.stat()
    spool = mpath.with_name(f".{MANIFEST_NAME}.deadhost-1-0.rows")
    spool.write_bytes(pickle.dumps([{**row, "mtime_ns": st.st_mtime_ns}]))
    assert unchanged_partition(mpath, str(camp.paths.output), fingerprint, expected_rows=rows, preview_rows=3) is None
    again = run_full_batch(camp.instance, camp.resources)
    assert again.messages_written == 0  # the spool's row was taken back, not rewritten
    assert not spool.exists() and read_fingerprint(mpath)[0] == fingerprint
    assert {r["name_key"]: r["mtime_ns"] for r in read_manifest(mpath)}[row["name_key"]] == st.st_mtime_ns


def test_the_check_refuses_another_fingerprint_or_row_count(camp):
    mpath = next(iter(manifests(camp).values()))
    fingerprint, rows = read_fingerprint(mpath)
    out = str(camp.paths.output)
    same = unchanged_partition(mpath, out, fingerprint, expected_rows=rows, preview_rows=2)
    assert same.rows == rows and len(same.preview) == 2 and same.preview[0] == read_manifest(mpath)[0]
    assert unchanged_partition(mpath, out, "0" * 64, expected_rows=rows, preview_rows=2) is None
    assert unchanged_partition(mpath, out, fingerprint, expected_rows=rows + 1, preview_rows=2) is None
    assert read_fingerprint(mpath.with_name("absent.parquet")) == (None, 0)


def test_stamping_gs_uris_keeps_the_fingerprint(camp):
    mpath = next(iter(manifests(camp).values()))
    fingerprint, _ = read_fingerprint(mpath)
    rows = read_manifest(mpath)
    changed, _ = stamp_manifest(mpath.parent, {r["path"]: f"gs://b/{r['path']}" for r in rows})
    assert changed and read_fingerprint(mpath)[0] == fingerprint
    assert {r["gs_uri"] for r in read_manifest(mpath)} == {f"gs://b/{r['path']}" for r in rows}


def test_the_fingerprint_moves_with_every_input_of_a_message():
    from dataclasses import replace

    from hybrid_audio_dagster.core.messages.fingerprint import names_digest, partition_fingerprint
    from hybrid_audio_dagster.core.templates import load_templates
    from hybrid_audio_dagster.defs.resources.paths import PROJECT_ROOT
    from tests.support.stems import fake_record

    tpl = load_templates(PROJECT_ROOT / "templates")["followup-en"]
    names = {"john": "John", "maria": "Maria"}
    stems = {}

    def resolve(key, seg, text):
        return stems.get(text) or fake_record(text)

    base_names = names_digest(tpl, names, resolve)
    assert names_digest(tpl, dict(reversed(list(names.items()))), resolve) == base_names  # order-free
    fixed = ('["intro","abc",1,2]',)
    base = partition_fingerprint(tpl, "wyndham", "Wyndham", fixed, base_names)
    john_text = next(s.render(name="John") for s in tpl.segments if s.kind.value == "name")
    stems[john_text] = replace(fake_record(john_text), trim_end=fake_record(john_text).trim_end - 1)
    trimmed = names_digest(tpl, names, resolve)
    stems.clear()
    slower = tpl.model_copy(update={"timing": tpl.timing.model_copy(update={"sentence_ms": 500})})
    variants = {
        "name text": partition_fingerprint(tpl, "wyndham", "Wyndham", fixed, names_digest(tpl, {**names, "john": "Jon"}, resolve)),
        "name key": partition_fingerprint(tpl, "wyndham", "Wyndham", fixed, names_digest(tpl, {"jon": "John", "maria": "Maria"}, resolve)),
        "a name more": partition_fingerprint(tpl, "wyndham", "Wyndham", fixed, names_digest(tpl, {**names, "zoe": "Zoë"}, resolve)),
        "a name stem's trim": partition_fingerprint(tpl, "wyndham", "Wyndham", fixed, trimmed),
        "developer text": partition_fingerprint(tpl, "wyndham", "Wyndham Destinations", fixed, base_names),
        "developer key": partition_fingerprint(tpl, "wyndham-2", "Wyndham", fixed, base_names),
        "a fixed stem": partition_fingerprint(tpl, "wyndham", "Wyndham", ('["intro","abd",1,2]',), base_names),
        "timing": partition_fingerprint(slower, "wyndham", "Wyndham", fixed, base_names),
    }
    assert all(v != base for v in variants.values()), [k for k, v in variants.items() if v == base]
    assert len(set(variants.values())) == len(variants)
    assert partition_fingerprint(tpl, "wyndham", "Wyndham", fixed, base_names) == base  # deterministic


def test_a_manifest_is_regrouped_into_few_row_groups_however_small_its_spool_chunks(tmp_path):
    import pyarrow.parquet as pq

    from hybrid_audio_dagster.core.messages.manifest import FIRST_GROUP_ROWS, ROW_GROUP_ROWS, ManifestWriter, read_column

    n = ROW_GROUP_ROWS + 100
    writer = ManifestWriter(tmp_path / MANIFEST_NAME, flush_rows=3)  # a spool chunk every 3 rows
    rows = [
        {
            "name_key": f"n{i:05d}",
            "name": f"N{i}",
            "path": f"t/d/n{i:05d}.wav",
            "frames": i,
            "sample_rate": 22050,
            "duration_s": 1.0,
            "bytes": 44 + i,
            "mtime_ns": i,
            "sha256": "0" * 64,
            "input_signature": "1" * 64,
            "template_signature": "2" * 64,
            "timeline": "{}",
            "gs_uri": None,
        }
        for i in range(n)
    ]
    for row in rows:
        writer.add(row)
    writer.commit(fingerprint="f" * 64)
    meta = pq.read_metadata(tmp_path / MANIFEST_NAME)
    assert meta.num_rows == n and meta.num_row_groups == 3  # 16, 4096, the rest
    assert meta.row_group(0).num_rows == FIRST_GROUP_ROWS and meta.row_group(1).num_rows == ROW_GROUP_ROWS
    assert read_manifest(tmp_path / MANIFEST_NAME) == rows  # order and values kept
    assert read_column(tmp_path / MANIFEST_NAME, "name_key") == [r["name_key"] for r in rows]
    assert read_fingerprint(tmp_path / MANIFEST_NAME) == ("f" * 64, n)
