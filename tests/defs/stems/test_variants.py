"""Template variants through the batch and the Dagster graph: each variant is a `templates`
partition of its own (`<id>--<variant>`) with its own messages, and it costs exactly the
stems whose signature differs from the template's (offline: the engine ignores emotion and
voice id, so a timing-and-emotion variant costs nothing, a speed change everything)."""

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybrid_audio_dagster.core.datasets.snapshot import displays_for
from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.stems.lookup import CampaignStems
from hybrid_audio_dagster.runner.batch import BatchError, run_full_batch
from tests.support.campaign import CountingTTS, calls, project_env

NAMES = ["John", "Zoë", "Ann-Marie"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham"]
BASE, SOFT, FAST = "followup-en", "followup-en--soft_warm", "followup-en--fast_assertive"


@pytest.fixture
def camp(tmp_path: Path):
    """The shipped followup-en with its two variants (the Spanish template left out), one batch run."""
    root, paths, resources, instance = project_env(tmp_path / "project", NAMES, DEVELOPERS, variants=True)
    (paths.templates / "seguimiento-es.json").unlink()
    log = tmp_path / "tts.log"
    resources = {**resources, "tts": CountingTTS(log_path=str(log))}
    summary = run_full_batch(instance, resources)
    return SimpleNamespace(root=root, paths=paths, resources=resources, instance=instance, log=log, first=summary)


def edit_template(paths, change) -> None:
    path = paths.templates / f"{BASE}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def rows(paths, template: str, dev: str) -> dict[str, dict]:
    return {r["name_key"]: r for r in read_manifest(manifest_path(paths.output, template, dev))}


def stem_files(row: dict) -> list[str]:
    return sorted(json.loads(row["timeline"])["stem_paths"].values())


def distinct_signatures(camp) -> int:
    campaign = CampaignStems(camp.instance, camp.paths, camp.resources["tts"])
    sigs: set[str] = set()
    for kind, keys in (
        (SegmentKind.NAME, camp.instance.get_dynamic_partitions("names")),
        (SegmentKind.DEVELOPER, camp.instance.get_dynamic_partitions("developers")),
        (SegmentKind.SCRIPT, camp.instance.get_dynamic_partitions("templates")),
    ):
        slots, _ = campaign.slots(kind, keys, displays_for(camp.paths, kind))
        sigs |= {s.signature for s in slots}
    return len(sigs)


def outputs(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*.wav")}


def test_two_variants_cost_only_the_stems_whose_signature_differs(camp):
    tpl = load_templates(camp.paths.templates)[BASE]
    per_voice = (
        len(NAMES) * len(tpl.segments_of(SegmentKind.NAME))
        + len(DEVELOPERS) * len(tpl.segments_of(SegmentKind.DEVELOPER))
        + len(tpl.segments_of(SegmentKind.SCRIPT))
    )
    # the base's stems once, soft_warm's all again (another speed), fast_assertive's none
    # (same text and speed; the offline contract has no emotion)
    assert camp.first.tts_calls == len(calls(camp.log)) == 2 * per_voice == distinct_signatures(camp) == 18
    spoken = Counter(calls(camp.log))
    assert max(spoken.values()) == 2  # a text is spoken at most once per speed
    assert spoken["Give me a call back whenever it suits you. Take care!"] == 1  # soft_warm's own close
    assert set(camp.instance.get_dynamic_partitions("templates")) == {BASE, SOFT, FAST}
    assert camp.first.messages_written == 3 * len(NAMES) * len(DEVELOPERS)

    for dev in camp.instance.get_dynamic_partitions("developers"):
        base, soft, fast = (rows(camp.paths, t, dev) for t in (BASE, SOFT, FAST))
        for template in (BASE, SOFT, FAST):  # every message verifies bit-exactly against its stems
            checked, problems = verify_partition(camp.paths, template, dev)
            assert problems == [] and checked == len(NAMES)
        for name in base:
            assert stem_files(fast[name]) == stem_files(base[name])  # the very same stem files
            assert fast[name]["frames"] < base[name]["frames"]  # its tighter pauses
            assert set(stem_files(soft[name])).isdisjoint(stem_files(base[name]))
            assert soft[name]["frames"] > base[name]["frames"]
            assert len({base[name]["sha256"], soft[name]["sha256"], fast[name]["sha256"]}) == 3

    again = run_full_batch(camp.instance, camp.resources)
    assert again.tts_calls == 0 and again.messages_written == 0


def test_a_text_only_variant_costs_one_call(camp):
    edit_template(camp.paths, lambda d: d["variants"].update(short_close={"segments": {"close": "Talk to you soon!"}}))
    n = len(calls(camp.log))
    summary = run_full_batch(camp.instance, camp.resources)
    assert calls(camp.log)[n:] == ["Talk to you soon!"] and summary.tts_calls == 1
    assert summary.messages_written == len(NAMES) * len(DEVELOPERS)  # the new variant's messages only
    for dev in camp.instance.get_dynamic_partitions("developers"):
        checked, problems = verify_partition(camp.paths, f"{BASE}--short_close", dev)
        assert problems == [] and checked == len(NAMES)


@pytest.mark.slow
def test_a_removed_variant_is_retired_like_a_removed_template(camp):
    edit_template(camp.paths, lambda d: d["variants"].pop("soft_warm"))
    before = outputs(camp.root)
    keep = {p: m for p, m in before.items() if SOFT not in p.parts}
    summary = run_full_batch(camp.instance, camp.resources)
    assert summary.tts_calls == 0 and summary.messages_written == 0
    assert set(camp.instance.get_dynamic_partitions("templates")) == {BASE, FAST}
    assert summary.partitions_retired == len(DEVELOPERS) and not (camp.paths.output / SOFT).exists()
    assert outputs(camp.root) == keep  # nothing else moved

    # the whole file goes: the template and every variant of it, nothing left over
    (camp.paths.templates / "es.json").write_text(
        (Path(__file__).resolve().parents[3] / "templates" / "seguimiento-es.json")
        .read_text(encoding="utf-8")
        .replace('"id": "seguimiento-es"', '"id": "es"'),
        encoding="utf-8",
    )
    (camp.paths.templates / f"{BASE}.json").unlink()
    summary = run_full_batch(camp.instance, camp.resources)
    assert set(camp.instance.get_dynamic_partitions("templates")) == {"es"}
    assert sorted(p.name for p in camp.paths.output.iterdir() if p.is_dir()) == ["es"]
    assert summary.partitions_retired == 2 * len(DEVELOPERS)


def test_an_invalid_variant_fails_the_batch_before_any_tts_call(camp):
    edit_template(camp.paths, lambda d: d["variants"].update(typo={"segments": {"closing": "Bye {name}!"}}))
    before, n = outputs(camp.root), len(calls(camp.log))
    with pytest.raises(BatchError) as exc:
        run_full_batch(camp.instance, camp.resources)
    assert f"{BASE}.json" in str(exc.value) and "variants.typo.segments.closing: no segment with that id" in str(exc.value)
    assert len(calls(camp.log)) == n and outputs(camp.root) == before
    assert set(camp.instance.get_dynamic_partitions("templates")) == {BASE, SOFT, FAST}  # nothing retired either
