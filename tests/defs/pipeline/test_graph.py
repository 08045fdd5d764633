"""The Dagster asset graph end to end, in-process, with the real offline TTS engine."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.definitions import defs as code_location
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.stems.checks import script_stems_current
from hybrid_audio_dagster.runner.batch import run_full_batch
from testkit.project import write_csv
from tests.support.campaign import all_messages_verified, project_env

NAMES = ["John", "Maria", "José", "Zoë", "O'Brien", "李雷", "Ann|Marie"]
DEVELOPERS = ["Hilton Grand Vacations", "Wyndham", "Marriott Vacation Club"]


@pytest.fixture
def project(tmp_path: Path):
    return project_env(tmp_path / "project", NAMES, DEVELOPERS)


def stem_files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "stems").rglob("*.wav")}


def distinct_texts(paths: ProjectPaths) -> int:
    templates = load_templates(paths.templates)
    names = json.loads((paths.datasets / "names.json").read_text())["items"]
    devs = json.loads((paths.datasets / "developers.json").read_text())["items"]
    texts = set()
    for t in templates.values():
        for s in t.segments:
            if s.kind is SegmentKind.NAME:
                texts |= {(t.language, s.render(name=n["display"])) for n in names}
            elif s.kind is SegmentKind.DEVELOPER:
                texts |= {(t.language, s.render(developer=d["display"])) for d in devs}
            else:
                texts.add((t.language, s.text))
    return len(texts)


def test_full_batch_costs_one_call_per_distinct_text_and_verifies(project):
    root, paths, resources, instance = project
    summary = run_full_batch(instance, resources, check=True)

    n_templates = len(load_templates(paths.templates))
    expected_messages = len(NAMES) * len(DEVELOPERS) * n_templates
    assert summary.messages_written == expected_messages
    assert summary.messages_failed == 0
    # TTS calls == distinct rendered texts (names + developers + script segments), not N × M
    assert summary.tts_calls == distinct_texts(paths)
    assert summary.tts_calls < expected_messages
    assert len(stem_files(root)) == summary.tts_calls
    assert all_messages_verified(paths, instance) == expected_messages
    # the in-run asset check passed for every partition
    for tid in instance.get_dynamic_partitions("templates"):
        for dev in instance.get_dynamic_partitions("developers"):
            rows = read_manifest(manifest_path(paths.output, tid, dev))
            assert sorted(r["name"] for r in rows) == sorted(NAMES)


def test_second_batch_makes_no_tts_call_and_rewrites_nothing(project):
    root, paths, resources, instance = project
    run_full_batch(instance, resources)
    stems_before = stem_files(root)
    outputs_before = {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*.wav")}

    again = run_full_batch(instance, resources)
    assert again.tts_calls == 0
    assert again.chars_sent == 0
    assert again.messages_written == 0
    assert again.messages_skipped == len(outputs_before)
    assert stem_files(root) == stems_before
    assert {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*.wav")} == outputs_before


@pytest.mark.slow
def test_one_new_name_assembles_one_message_per_partition(project):
    root, paths, resources, instance = project
    run_full_batch(instance, resources)
    write_csv(root / "data" / "names.csv", "name", NAMES + ["Priya"])

    summary = run_full_batch(instance, resources)
    partitions = len(DEVELOPERS) * len(load_templates(paths.templates))
    assert summary.messages_written == partitions
    assert summary.messages_skipped == len(NAMES) * partitions
    # only the new name's segments were spoken: one per template name-segment
    assert summary.tts_calls == sum(len(t.segments_of(SegmentKind.NAME)) for t in load_templates(paths.templates).values())
    assert all_messages_verified(paths, instance) == (len(NAMES) + 1) * partitions


def test_editing_one_segment_regenerates_only_its_stems(project):
    root, paths, resources, instance = project
    run_full_batch(instance, resources)
    stems_before = stem_files(root)
    tpl_path = root / "templates" / "followup-en.json"
    data = json.loads(tpl_path.read_text())
    offer = next(s for s in data["segments"] if s["id"] == "offer")
    offer["text"] = "I have one quick update that could lower your fees."
    data["version"] += 1
    tpl_path.write_text(json.dumps(data))
    # before the batch, the script stems' check shows exactly what is stale and its cost
    stale = dg.materialize(
        [*code_location.assets, *code_location.asset_checks],
        selection=dg.AssetSelection.checks(script_stems_current),
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    [evaluation] = stale.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["stems_to_synthesize"].value == 1
    assert evaluation.metadata["chars_to_synthesize"].value == len(offer["text"])

    summary = run_full_batch(instance, resources)
    assert summary.tts_calls == 1  # the one script segment, nothing else
    after = stem_files(root)
    assert len(after) == len(stems_before) + 1
    assert all(after[p] == m for p, m in stems_before.items())  # no stem rewritten
    # every English message contains the segment; the Spanish ones are untouched
    assert summary.messages_written == len(NAMES) * len(DEVELOPERS)
    assert summary.messages_skipped == len(NAMES) * len(DEVELOPERS)
    all_messages_verified(paths, instance)
    fresh = dg.materialize(
        [*code_location.assets, *code_location.asset_checks],
        selection=dg.AssetSelection.checks(script_stems_current),
        instance=instance,
        resources=resources,
    )
    assert fresh.get_asset_check_evaluations()[0].passed


def test_hostile_names_become_safe_slugs_and_correct_messages(project):
    root, paths, resources, instance = project
    write_csv(root / "data" / "names.csv", "name", NAMES + ["../../etc/passwd", "/abs/path", "=cmd()"])
    run_full_batch(instance, resources)
    snapshot = json.loads((paths.datasets / "names.json").read_text())
    keys = {i["display"]: i["key"] for i in snapshot["items"]}
    assert set(keys) == set(NAMES)  # the path-like and formula values were rejected
    assert {r["reason"] for r in snapshot["rejects"]} >= {"path_like", "formula_injection"}
    for key in keys.values():
        assert key and "|" not in key and "/" not in key and ".." not in key
    # nothing written outside the project's folders
    allowed = {"data", "templates", "stems", "output", "logs"}  # logs: the audit log
    assert {p.relative_to(root).parts[0] for p in root.rglob("*")} <= allowed
    assert all_messages_verified(paths, instance) == len(NAMES) * len(DEVELOPERS) * 2


def test_restricted_run_builds_only_requested_names(project):
    root, paths, resources, instance = project
    run_full_batch(instance, resources)
    manifest = manifest_path(paths.output, "followup-en", instance.get_dynamic_partitions("developers")[0])
    rows_before = {r["name_key"]: r for r in read_manifest(manifest)}
    target = next(k for k, r in rows_before.items() if r["name"] == "John")
    (paths.output / rows_before[target]["path"]).unlink()  # the on-demand path rebuilds it

    summary = run_full_batch(instance, resources, names=[target])
    assert summary.messages_written == 1
    rows_after = {r["name_key"]: r for r in read_manifest(manifest)}
    assert rows_after.keys() == rows_before.keys()
    assert all(rows_after[k] == rows_before[k] for k in rows_before if k != target)


def test_definitions_load():
    from hybrid_audio_dagster import definitions

    dg.Definitions.validate_loadable(definitions.defs)
    repo = definitions.defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} >= {
        "names_dataset",
        "developers_dataset",
        "message_templates",
        "name_stems",
        "developer_stems",
        "script_stems",
        "messages",
    }
    # uploads and rotation cycles are partitioned: one partition per upload, one per cycle
    graph = repo.asset_graph
    assert graph.get(dg.AssetKey("dataset_uploads")).partitions_def.name == "uploads"
    assert graph.get(dg.AssetKey("rotation_cycle")).partitions_def.name == "rotation_cycles"
    # the upload and the rotation's hand-out are declared, recorded only by their own op jobs:
    # the UI's "Materialize all" (every executable asset) leaves them out
    executable = {k.to_user_string() for k in graph.executable_asset_keys}
    assert {"dataset_uploads", "rotation_advance"}.isdisjoint(executable)
    assert {"names_dataset", "name_stems", "messages", "rotation_cycle"} <= executable


def test_stems_through_cartesia_server_and_cache(project, monkeypatch):
    """The stem assets end to end against a real loopback server speaking the Cartesia API."""
    from hybrid_audio_dagster.defs.resources.tts import CartesiaTTSResource
    from testkit.cartesia_server import FakeCartesia

    root, paths, _, instance = project
    key = "sk_car_graph_test_key_0123456789"
    monkeypatch.setenv("CARTESIA_API_KEY", key)
    with FakeCartesia(key) as server:
        tts = CartesiaTTSResource(api_key=dg.EnvVar("CARTESIA_API_KEY"), base_url=server.base_url, max_concurrency=3)
        resources = {"paths": paths, "tts": tts}
        first = run_full_batch(instance, resources, check=True)
        assert first.tts_calls == distinct_texts(paths) == len(server.tts_requests)
        assert first.messages_failed == 0
        assert all_messages_verified(paths, instance) == first.messages_written

        second = run_full_batch(instance, resources)
        assert second.tts_calls == 0
        assert len(server.tts_requests) == first.tts_calls  # zero requests on the second run
        assert second.messages_written == 0
    # the engine is recorded, the key is not
    md = latest_stem_metadata(instance)
    assert md["engine"]["engine"] == "cartesia"
    assert key not in json.dumps(md, default=str)


def latest_stem_metadata(instance: dg.DagsterInstance) -> dict:
    from hybrid_audio_dagster.defs.metadata_index import latest_metadata

    key = instance.get_dynamic_partitions("developers")[0]
    return latest_metadata(instance, dg.AssetKey("developer_stems"), [key])[key]


def test_only_public_dagster_apis():
    """The package and the benchmarks import Dagster as ``dagster`` only, never its private modules."""
    root = Path(__file__).resolve().parents[3]
    offenders = [
        f"{p.relative_to(root)}:{n}"
        for folder in ("hybrid_audio_dagster", "bench")
        for p in (root / folder).rglob("*.py")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "dagster._" in line or "from dagster." in line
    ]
    assert offenders == []


def test_no_op_or_asset_runs_nested_materializations():
    """Only the in-process drivers (make batch / make init, tests) execute jobs; ops, assets,
    sensors and schedules never call dg.materialize or execute_in_process."""
    root = Path(__file__).resolve().parents[3] / "hybrid_audio_dagster"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.relative_to(root).parts[0] != "runner"  # the in-process drivers live there, and only there
        and ("execute_in_process" in p.read_text() or "dg.materialize(" in p.read_text())
    ]
    assert offenders == []
