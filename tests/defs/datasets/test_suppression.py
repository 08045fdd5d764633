"""The suppression list end to end (issue 23), through the batch's and the upload's runs on a
Dagster instance: a listed person loses their messages, manifest rows and the stems only they
use, and costs no TTS call; adding them back to the names keeps them out (refused rows); taking
them off the list brings them back; the rotation never hands them out; every change is in the
audit log by hash."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.datasets.suppression import person_hash
from hybrid_audio_dagster.core.messages.manifest import read_manifest
from hybrid_audio_dagster.core.rotation.campaign import open_rotation
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import write_csv
from tests.support.campaign import all_messages_verified, batched_campaign, calls

NAMES = ["John", "Maria", "Zoë", "Ann-Marie"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham"]


@pytest.fixture
def camp(tmp_path: Path):
    return batched_campaign(tmp_path, NAMES, DEVELOPERS)


def wavs(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*.wav")}


def manifest_keys(root: Path) -> dict[Path, set[str]]:
    return {m: {r["name_key"] for r in read_manifest(m)} for m in (root / "output").rglob("manifest.parquet")}


def stem_texts(paths) -> dict[str, list[Path]]:
    """text → stem folders holding it, read from the store's sidecars."""
    out: dict[str, list[Path]] = {}
    for sidecar in Path(paths.stems).rglob("*.json"):
        out.setdefault(json.loads(sidecar.read_text())["record"]["text"], []).append(sidecar.parent)
    return out


def suppress(paths, *names: str) -> None:
    write_csv(Path(paths.data) / "suppression.csv", "name", list(names))


def latest(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def names_partitions(instance) -> list[str]:
    return instance.get_dynamic_partitions("names")


def upload(camp, filename: str, content: bytes, role: str = "") -> dg.ExecuteInProcessResult:
    sha = hashlib.sha256(content).hexdigest()
    key = f"{role or 'names'}-{sha[:16]}"
    camp.instance.add_dynamic_partitions("uploads", [key])
    config = {"sha256": sha, "content_b64": base64.b64encode(content).decode(), "filename": filename, "role": role}
    job = build_defs(camp.resources).resolve_job_def("ingest_job")
    return job.execute_in_process(
        instance=camp.instance, partition_key=key, run_config={"ops": {"dataset_uploads": {"config": config}}}, raise_on_error=False
    )


def test_a_suppressed_person_loses_everything_and_nobody_else_moves(camp):
    root = camp.root
    before_wavs = wavs(root)
    before_manifests = manifest_keys(root)
    maria_wavs = {p for p in before_wavs if p.name == "maria.wav"}
    assert len(maria_wavs) == 2 * len(DEVELOPERS)  # two templates (en, es) × two developers
    texts_before = stem_texts(camp.paths)
    assert any("Maria" in t for t in texts_before)
    n_calls = len(calls(camp.log))

    suppress(camp.paths, "MARÍA")  # the names' folding: case and accents do not matter
    summary = run_full_batch(camp.instance, camp.resources)

    assert len(calls(camp.log)) == n_calls and summary.tts_calls == 0  # not one TTS call
    after = wavs(root)
    assert not any(p.name == "maria.wav" for p in after)
    assert after == {p: m for p, m in before_wavs.items() if p not in maria_wavs}  # everyone else: same files, same mtimes
    for manifest, keys in manifest_keys(root).items():
        assert keys == before_manifests[manifest] - {"maria"}
    assert "maria" not in names_partitions(camp.instance)
    texts_after = stem_texts(camp.paths)
    assert not any("Maria" in t for t in texts_after)  # the stems only she used are gone
    assert {t: f for t, f in texts_before.items() if "Maria" not in t} == texts_after  # the others' all stay
    assert all_messages_verified(camp.paths, camp.instance) == (len(NAMES) - 1) * len(DEVELOPERS) * 2

    sup = latest(camp.instance, "suppression")
    assert sup["suppressed"] == 1 and sup["messages_retired"] == len(maria_wavs) and sup["manifest_rows_retired"] == len(maria_wavs)
    assert sup["stems_removed"] == 2 and sup["last_changed"] != "never"  # her greeting in each template
    assert "| 1 | 1 | 0 | 4 | 4 | 2 |" in sup["changes"]
    names_md = latest(camp.instance, "names_dataset")
    assert names_md["suppressed"] == 1 and "suppressed" in names_md["rejects"] and "Mar" not in names_md["rejects"]

    audit = (Path(camp.paths.logs) / "audit.jsonl").read_text()
    assert "Maria" not in audit and "MARÍA" not in audit and "maria" not in audit.lower().replace("messages_retired", "")
    events = [json.loads(line) for line in audit.splitlines()]
    changed = [e for e in events if e["event"] == "suppression_changed"]
    assert [c["added"] for c in changed] == [[person_hash("Maria")[:16]]]
    [retired] = [e for e in events if e["event"] == "suppression_retired"]
    assert retired["messages"] == len(maria_wavs) and retired["people"] == [person_hash("Maria")[:16]]

    # the next batch changes nothing and records no new change
    again = run_full_batch(camp.instance, camp.resources)
    assert again.tts_calls == 0 and again.messages_written == 0 and wavs(root) == after
    sup = latest(camp.instance, "suppression")
    assert sup["changed_now"] is False and sup["messages_retired"] == 0

    # the rotation never hands her out
    rotation = open_rotation(camp.paths, seed="s", fsync=False)
    pairs = rotation.preview(len(NAMES) * len(DEVELOPERS) * 2)
    assert pairs and not any(p["name"] == "maria" for p in pairs)


def test_added_back_to_the_names_she_stays_out_then_leaving_the_list_brings_her_back(camp):
    suppress(camp.paths, "Maria")
    run_full_batch(camp.instance, camp.resources)
    kept = wavs(camp.root)
    n_calls = len(calls(camp.log))

    # a names upload holding her again: stored, but she is refused (reason suppressed), nothing built
    result = upload(camp, "names-more.csv", b"name\nMaria\nPedro\n")
    assert result.success
    names_md = {m.asset_key.to_user_string(): m.metadata for m in result.get_asset_materialization_events() for m in [m.materialization]}
    assert names_md["names_dataset"]["suppressed"].value == 1
    assert "suppressed" in names_md["names_dataset"]["rejects"].value
    summary = run_full_batch(camp.instance, camp.resources)
    assert "maria" not in names_partitions(camp.instance) and "pedro" in names_partitions(camp.instance)
    assert not any(p.name == "maria.wav" for p in wavs(camp.root))
    assert all("Maria" not in c for c in calls(camp.log)[n_calls:])  # Pedro's stems only
    assert summary.tts_calls == len(calls(camp.log)) - n_calls == 2
    assert {p: m for p, m in wavs(camp.root).items() if p in kept} == kept

    # off the list: back, with her stems made again (the suppression removed them) and nobody else's
    n_calls = len(calls(camp.log))
    suppress(camp.paths)  # the header alone: nobody
    before = wavs(camp.root)
    summary = run_full_batch(camp.instance, camp.resources)
    assert "maria" in names_partitions(camp.instance)
    new_calls = calls(camp.log)[n_calls:]
    assert len(new_calls) == 2 and all("Maria" in c for c in new_calls)  # her greeting per template, nothing of anyone else
    back = wavs(camp.root)
    assert sum(p.name == "maria.wav" for p in back) == 2 * len(DEVELOPERS)
    assert {p: m for p, m in back.items() if p in before} == before  # nobody else rewritten
    assert summary.messages_written == 2 * len(DEVELOPERS)
    sup = latest(camp.instance, "suppression")
    assert sup["suppressed"] == 0 and sup["changed_now"] is True
    assert all_messages_verified(camp.paths, camp.instance) == (len(NAMES) + 1) * len(DEVELOPERS) * 2


def test_listed_and_unlisted_before_a_batch_costs_nothing_and_moves_nothing(camp):
    """Her stems still exist, so taking her off costs no TTS call: found by signature."""
    before = wavs(camp.root)
    n_calls = len(calls(camp.log))
    suppress(camp.paths, "Zoe")
    # the rotation reads the list as it is now: no turn for her even before a batch
    rotation = open_rotation(camp.paths, seed="s", fsync=False)
    assert not any(p["name"] == "zoe" for p in rotation.preview(len(NAMES) * len(DEVELOPERS) * 2))
    suppress(camp.paths)
    summary = run_full_batch(camp.instance, camp.resources)
    assert summary.tts_calls == 0 and len(calls(camp.log)) == n_calls and wavs(camp.root) == before


def test_a_suppression_upload_retires_at_once_and_deleting_it_lets_them_back(camp):
    from hybrid_audio_dagster.core.datasets.admin import delete, list_datasets

    n_calls = len(calls(camp.log))
    result = upload(camp, "optouts.csv", b"name\njohn\n", role="suppression")
    assert result.success, result
    mats = {e.materialization.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert mats["dataset_uploads"]["stored_as"].value.startswith("suppression/")
    assert mats["suppression"]["suppressed"].value == 1 and mats["suppression"]["messages_retired"].value == 2 * len(DEVELOPERS)
    assert not any(p.name == "john.wav" for p in wavs(camp.root)) and "john" not in names_partitions(camp.instance)
    [entry] = [e for e in list_datasets(camp.paths) if e["kind"] == "suppression"]
    delete(camp.paths, entry["name"])
    summary = run_full_batch(camp.instance, camp.resources)
    assert "john" in names_partitions(camp.instance) and sum(p.name == "john.wav" for p in wavs(camp.root)) == 2 * len(DEVELOPERS)
    assert summary.tts_calls == len(calls(camp.log)) - n_calls == 2


def test_an_unreadable_suppression_list_stops_the_batch(camp):
    from hybrid_audio_dagster.runner.batch import BatchError

    (Path(camp.paths.data) / "suppression.csv").write_text("email\nx@example.com\n")
    before = wavs(camp.root)
    with pytest.raises(BatchError, match="suppression"):
        run_full_batch(camp.instance, camp.resources)
    assert wavs(camp.root) == before


def test_the_list_follows_the_names_rules_and_an_inbox_file_says_its_role(tmp_path):
    from hybrid_audio_dagster.core.datasets.suppression import SuppressionListError, read_suppression
    from hybrid_audio_dagster.core.inbox.parse import detect_role
    from testkit.project import make_project

    assert detect_role("suppression-2026-12.csv") == "suppression" and detect_role("opt-outs.json") == "suppression"
    assert detect_role("names.csv") == "names"
    paths = make_project(tmp_path, ["Zoë"], ["Wyndham"])
    assert read_suppression(paths).people == {}  # no file: nobody
    suppress(paths)
    assert read_suppression(paths).people == {}  # emptied: nobody, not an error
    write_csv(Path(paths.data) / "suppression.csv", "name", ["ZOE", "zoë", "=cmd()"])
    listed = read_suppression(paths)
    assert list(listed.people) == [person_hash("Zoë")]  # one person, folded like the names
    assert [r.reason for r in listed.rejects] == ["formula_injection"]
    (Path(paths.data) / "suppression.csv").write_text("email\nx@example.com\n")
    with pytest.raises(SuppressionListError, match="no_column"):
        read_suppression(paths)
