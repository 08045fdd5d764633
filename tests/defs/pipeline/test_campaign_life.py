"""A campaign's life after its first batch: templates copied, edited and removed, developers
removed, a voice changed, a TTS failure, a wiped Dagster home, a forced partition, a slug
collision and a privacy erase. Each goes through the batch or the Dagster graph."""

import json
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.datasets.snapshot import displays_for
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.metadata_index import latest_metadata
from hybrid_audio_dagster.defs.partitions import message_partition_key
from hybrid_audio_dagster.defs.stems.lookup import CampaignStems
from hybrid_audio_dagster.runner.batch import BatchError, run_full_batch
from testkit.project import write_csv
from tests.support.campaign import CountingTTS, batched_campaign, calls, run_requests

NAMES = ["John", "Maria", "Zoë", "Ann-Marie"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham"]


@pytest.fixture
def camp(tmp_path: Path):
    return batched_campaign(tmp_path, NAMES, DEVELOPERS)


def outputs(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*.wav")}


def copy_template(paths, src: str, dst: str, **timing) -> None:
    data = json.loads((paths.templates / f"{src}.json").read_text())
    data["id"] = dst
    data["timing"].update(timing)
    (paths.templates / f"{dst}.json").write_text(json.dumps(data))


def verify_all(paths, instance) -> int:
    total = 0
    for tid in instance.get_dynamic_partitions("templates"):
        for dev in instance.get_dynamic_partitions("developers"):
            checked, problems = verify_partition(paths, tid, dev)
            assert problems == [], problems[:3]
            total += checked
    return total


def test_timing_only_copy_of_a_template_costs_no_tts_call(camp):
    copy_template(camp.paths, "followup-en", "followup-en-slow", sentence_ms=700)
    before = len(calls(camp.log))
    summary = run_full_batch(camp.instance, camp.resources)
    assert len(calls(camp.log)) == before and summary.tts_calls == 0
    assert summary.messages_written == len(NAMES) * len(DEVELOPERS)  # the new template's messages only
    for dev in camp.instance.get_dynamic_partitions("developers"):
        checked, problems = verify_partition(camp.paths, "followup-en-slow", dev)
        assert problems == [] and checked == len(NAMES)
        slow = {r["name_key"]: r for r in read_manifest(manifest_path(camp.paths.output, "followup-en-slow", dev))}
        fast = {r["name_key"]: r for r in read_manifest(manifest_path(camp.paths.output, "followup-en", dev))}
        assert all(slow[k]["frames"] > fast[k]["frames"] for k in slow)  # the longer pauses are there
    # the stem checks agree: every partition current, nothing to synthesize
    campaign = CampaignStems(camp.instance, camp.paths, camp.resources["tts"])
    for kind in SegmentKind:
        keys = camp.instance.get_dynamic_partitions(
            {SegmentKind.NAME: "names", SegmentKind.DEVELOPER: "developers", SegmentKind.SCRIPT: "templates"}[kind]
        )
        fresh = campaign.freshness(kind, keys, displays_for(camp.paths, kind), deep=True)
        assert fresh.current and not fresh.to_synthesize


@pytest.mark.slow
def test_removed_template_and_developer_are_retired_and_nothing_else_moves(camp):
    copy_template(camp.paths, "followup-en", "followup-en-slow", sentence_ms=700)
    run_full_batch(camp.instance, camp.resources)
    wyndham = next(k for k in camp.instance.get_dynamic_partitions("developers") if k.startswith("wyndham"))
    (camp.paths.templates / "followup-en-slow.json").unlink()
    write_csv(camp.root / "data" / "developers.csv", "developer", ["Hilton Grand Vacations"])
    before = outputs(camp.root)
    keep = {p: m for p, m in before.items() if "followup-en-slow" not in p.parts and wyndham not in p.parts}

    summary = run_full_batch(camp.instance, camp.resources)
    assert summary.tts_calls == 0 and summary.messages_written == 0
    assert "followup-en-slow" not in camp.instance.get_dynamic_partitions("templates")
    assert wyndham not in camp.instance.get_dynamic_partitions("developers")
    assert not (camp.paths.output / "followup-en-slow").exists()
    assert not any((camp.paths.output / t / wyndham).exists() for t in ("followup-en", "seguimiento-es"))
    # 3 partition folders retired: the copy × 2 developers, plus Wyndham × the 2 others
    assert summary.partitions_retired == 4
    assert summary.files_retired == len(before) - len(keep)
    assert outputs(camp.root) == keep  # same files, same mtimes
    assert verify_all(camp.paths, camp.instance) == len(keep)


@pytest.mark.slow
def test_voice_change_refuses_old_stems_then_the_batch_rebuilds_with_new_ones(camp):
    tpl_path = camp.paths.templates / "followup-en.json"
    data = json.loads(tpl_path.read_text())
    data["voice"]["speed"] = 1.2
    tpl_path.write_text(json.dumps(data))
    before = outputs(camp.root)
    defs = build_defs(camp.resources)
    templates = camp.instance.get_dynamic_partitions("templates")
    devs = camp.instance.get_dynamic_partitions("developers")
    request = dg.RunRequest(
        job_name="messages_job",
        tags={
            "dagster/asset_partition_range_start": str(message_partition_key(templates[0], devs[0])),
            "dagster/asset_partition_range_end": str(message_partition_key(templates[-1], devs[-1])),
        },
    )
    [result] = run_requests(defs, camp.instance, [request])
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "nothing was written" in message
    assert "materialize name_stems partition(s)" in message and "'john'" in message
    assert "developer_stems" in message and "script_stems" in message and "'followup-en'" in message
    assert outputs(camp.root) == before

    n = len(calls(camp.log))
    summary = run_full_batch(camp.instance, camp.resources)
    tpl = load_templates(camp.paths.templates)["followup-en"]
    expected = (
        len(NAMES) * len(tpl.segments_of(SegmentKind.NAME))
        + len(DEVELOPERS) * len(tpl.segments_of(SegmentKind.DEVELOPER))
        + len(tpl.segments_of(SegmentKind.SCRIPT))
    )
    assert summary.tts_calls == len(calls(camp.log)) - n == expected
    assert summary.messages_written == len(NAMES) * len(DEVELOPERS)  # the English ones
    assert verify_all(camp.paths, camp.instance) == 2 * len(NAMES) * len(DEVELOPERS)
    for dev in devs:
        for row in read_manifest(manifest_path(camp.paths.output, "followup-en", dev)):
            for rel in json.loads(row["timeline"])["stem_paths"].values():
                sidecar = json.loads((camp.paths.stems / rel).with_suffix(".json").read_text())
                assert sidecar["identity"]["contract"]["speed"] == 1.2


@pytest.mark.slow
def test_tts_failure_on_the_last_of_20_new_stems_costs_one_call_on_retry(camp):
    new = [f"Person{chr(65 + i)}" for i in range(20)]
    write_csv(camp.root / "data" / "names.csv", "name", NAMES + new)
    tpl = load_templates(camp.paths.templates)["followup-en"]
    doomed = tpl.segments_of(SegmentKind.NAME)[0].render(name=new[-1])
    flaky = {**camp.resources, "tts": CountingTTS(log_path=str(camp.log), fail_on=[doomed])}
    n = len(calls(camp.log))
    with pytest.raises(BatchError, match="1 of .* new stems failed"):
        run_full_batch(camp.instance, flaky)
    made = len(calls(camp.log)) - n
    assert made == 20 * 2 - 1  # every other new stem (2 templates) was synthesized and kept

    n = len(calls(camp.log))
    summary = run_full_batch(camp.instance, camp.resources)
    assert calls(camp.log)[n:] == [doomed]  # exactly the one that failed
    assert summary.messages_written == len(new) * 2 * len(DEVELOPERS)


def test_wiped_dagster_home_costs_no_tts_call(camp):
    n = len(calls(camp.log))
    fresh = dg.DagsterInstance.ephemeral()  # every materialization record is gone
    summary = run_full_batch(fresh, camp.resources)
    assert len(calls(camp.log)) == n and summary.tts_calls == 0
    assert summary.messages_written == 0  # the manifests and files are intact, nothing to rebuild
    assert verify_all(camp.paths, fresh) == 2 * len(NAMES) * len(DEVELOPERS)


class JitterTTS(CountingTTS):
    """Different bytes on every call (a non-deterministic engine): flips the last PCM sample's
    lowest bit according to a call counter."""

    def synthesize(self, text, voice):
        wav = bytearray(super().synthesize(text, voice))
        wav[-2] ^= len(calls(self.log_path)) & 1 or 1
        return bytes(wav)


def test_force_on_one_partition_leaves_every_other_partition_intact(camp):
    copy_template(camp.paths, "followup-en", "followup-en-slow", sentence_ms=700)
    run_full_batch(camp.instance, camp.resources)  # followup-en-slow shares followup-en's script stems
    stems_before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in camp.paths.stems.rglob("*.wav")}
    defs = build_defs({**camp.resources, "tts": JitterTTS(log_path=str(camp.log))})
    [forced] = run_requests(
        defs,
        camp.instance,
        [
            dg.RunRequest(
                job_name="script_stems_job",
                partition_key="followup-en",
                run_config={"ops": {"script_stems": {"config": {"force": True}}}},
            )
        ],
    )
    assert forced.success
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in camp.paths.stems.rglob("*.wav")}
    assert all(after[p] == v for p, v in stems_before.items())  # write-once: no file rewritten
    assert len(after) > len(stems_before)  # the forced stems are new files
    # the copy's partition still points at the old files, which still verify; so do all messages
    campaign = CampaignStems(camp.instance, camp.paths, camp.resources["tts"]).load(SegmentKind.SCRIPT, ["followup-en-slow", "followup-en"])
    old = campaign.records[SegmentKind.SCRIPT]["followup-en-slow"]
    new = campaign.records[SegmentKind.SCRIPT]["followup-en"]
    assert {r.path for r in old}.isdisjoint({r.path for r in new})
    assert all(campaign.store.verify(r) for r in old + new)
    assert verify_all(camp.paths, camp.instance) == 3 * len(NAMES) * len(DEVELOPERS)
    # the next batch moves both templates' messages to the newest stem of the signature
    summary = run_full_batch(camp.instance, camp.resources)
    assert summary.tts_calls == 0 and summary.messages_written == 2 * len(NAMES) * len(DEVELOPERS)
    assert verify_all(camp.paths, camp.instance) == 3 * len(NAMES) * len(DEVELOPERS)


def test_a_colliding_newcomer_never_takes_an_existing_slug(camp):
    keys = {i["display"]: i["key"] for i in json.loads((camp.paths.datasets / "names.json").read_text())["items"]}
    assert keys["Ann-Marie"] == "ann-marie"
    # "Ann Marie" folds differently but slugs the same, and sorts first: it used to win the plain slug
    write_csv(camp.root / "data" / "names.csv", "name", ["Ann Marie", *NAMES])
    run_full_batch(camp.instance, camp.resources)
    after = {i["display"]: i["key"] for i in json.loads((camp.paths.datasets / "names.json").read_text())["items"]}
    assert {d: after[d] for d in keys} == keys
    assert after["Ann Marie"].startswith("ann-marie-") and after["Ann Marie"] != "ann-marie"
    assert "ann-marie" in camp.instance.get_dynamic_partitions("names")
    assert (camp.paths.output / "followup-en").is_dir() and list((camp.paths.output / "followup-en").rglob("ann-marie.wav"))


def _files_naming(root: Path, needles: list[bytes]) -> list[Path]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes().lower()
            if any(n in data for n in needles):
                hits.append(p)
    return hits


def test_erasing_a_person_removes_every_file_and_row_that_names_them_and_nothing_else(camp):
    # the person also arrived in an upload and in a rejected file's report
    write_csv(camp.paths.dataset_store / "names" / "20260101T000000Z-abcdef12-names_q1.csv", "name", ["Maria", "Priya"])
    run_full_batch(camp.instance, camp.resources)
    key = next(i["key"] for i in json.loads((camp.paths.datasets / "names.json").read_text())["items"] if i["display"] == "Maria")
    assert _files_naming(camp.root, [b"maria"])
    others = {p: m for p, m in outputs(camp.root).items() if p.stem != key}
    stems_before = set(camp.paths.stems.rglob("*.wav"))
    # a writer that died left a spool holding her row (and everyone else's) next to a manifest
    from hybrid_audio_dagster.core.messages.manifest import ManifestWriter

    dev = camp.instance.get_dynamic_partitions("developers")[0]
    manifest = manifest_path(camp.paths.output, "followup-en", dev)
    dead = ManifestWriter(manifest, flush_rows=1)
    for row in read_manifest(manifest):
        dead.add(row)
    assert dead.spool_path.exists() and b"Maria" in dead.spool_path.read_bytes()

    defs = build_defs(camp.resources)
    result = defs.resolve_job_def("erase_name_job").execute_in_process(
        instance=camp.instance, run_config={"ops": {"erase_name": {"config": {"name": "Maria"}}}}
    )
    assert result.success
    assert _files_naming(camp.root, [b"maria"]) == []
    assert not dead.spool_path.exists()
    assert len(read_manifest(manifest)) == len(NAMES)  # everyone else (+ Priya, - Maria) kept
    assert key not in camp.instance.get_dynamic_partitions("names")
    assert latest_metadata(camp.instance, dg.AssetKey("name_stems"), [key]) == {}
    assert outputs(camp.root) == others  # everyone else's messages untouched
    removed = stems_before - set(camp.paths.stems.rglob("*.wav"))
    assert len(removed) == 2  # her greeting in each template, nothing shared
    assert verify_all(camp.paths, camp.instance) == len(others)
    # nothing in the run's own records names her
    logs = json.dumps([str(e) for e in result.all_events]).lower()
    assert "maria" not in logs
    # and she stays gone: the next batch does not bring her back
    run_full_batch(camp.instance, camp.resources)
    assert _files_naming(camp.root, [b"maria"]) == []
