"""The rotation as an A/B stream of template variants: the scripts stream over the variants
of one template alternates them deterministically, across cycles and restarts, with the
pair guarantees unchanged; per-variant counts in the status, the assets and the CLI; a
removed variant leaves the stream like a removed template."""

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.cli import common as cli_common
from hybrid_audio_dagster.cli import rotation as cli_rotation
from hybrid_audio_dagster.core.rotation.campaign import open_rotation, rotation_templates
from hybrid_audio_dagster.core.rotation.counts import script_counts
from hybrid_audio_dagster.core.rotation.errors import DatasetError
from hybrid_audio_dagster.core.rotation.ledger import read_audit
from hybrid_audio_dagster.core.rotation.retry_ledger import RetryLedger
from hybrid_audio_dagster.core.template_variants import select_keys
from hybrid_audio_dagster.definitions import build_defs
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.pipeline.sensors import rotation_requests
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.rotation.admin import plain_metadata
from hybrid_audio_dagster.defs.rotation.assets import rotation_cycle, rotation_status_metadata
from hybrid_audio_dagster.defs.rotation.plan import RotationSettings
from hybrid_audio_dagster.defs.rotation.schedules import build_rotation_schedule
from hybrid_audio_dagster.defs.tags import STAGE_TAG
from hybrid_audio_dagster.runner.batch import run_full_batch
from tests.support.campaign import NoCallTTS
from tests.support.rotation import execute_request, make_store, warm_home

A, B, C = "followup-en", "followup-en--soft_warm", "followup-en--fast_assertive"


def names_devs(n: int = 5, m: int = 3) -> tuple[list[str], list[str]]:
    return [f"n{i}" for i in range(n)], [f"d{i}" for i in range(m)]


# ------------------------------------------------------------------ pure: the stream


def test_two_variants_strictly_alternate_across_cycles_and_restarts(tmp_path):
    names, devs = names_devs()
    got = []
    for k in (1, 4, 7, 2, 13, 9, 6, 3, 5):  # 50 pairs: three cycles and a bit; a fresh store (a restart) each time
        got += make_store(tmp_path, names, devs, [A, B], seed="ab").advance(k).items
    scripts = [a.script for a in got]
    assert all(x != y for x, y in zip(scripts, scripts[1:])), scripts  # A B A B … never twice in a row
    assert Counter(scripts) == {A: 25, B: 25}
    for cycle in (0, 1, 2):  # the pair guarantee is untouched: every pair once per cycle
        assert sorted(a.pair for a in got if a.cycle == cycle) == sorted(product(names, devs))


def test_three_variants_take_turns_and_the_trail_counts_them(tmp_path):
    names, devs = names_devs(4, 3)
    store = make_store(tmp_path, names, devs, [A, B, C], seed="ab")
    got = []
    for k in (5, 1, 8, 3, 10, 3):  # 30 pairs
        got += store.advance(k).items
    scripts = [a.script for a in got]
    for i in range(0, 30, 3):  # every aligned block of 3 holds each variant once
        assert sorted(scripts[i : i + 3]) == sorted([A, B, C])
    for i in range(1, 31):  # so the counts differ by at most 1 at every point
        c = Counter(scripts[:i])
        assert max(c.values()) - min(c.get(s, 0) for s in (A, B, C)) <= 1
    store.preview(7)  # a preview and a replay hand nothing out
    store.advance(2, run_key_basis="tick-1")
    store.advance(2, run_key_basis="tick-1")
    counts = script_counts(read_audit(store.audit_path))
    handed = scripts + [a.script for a in store.batch_for("tick-1").items]
    assert counts.total == Counter(handed)
    assert counts.in_cycle(0) == dict(Counter(a.script for a in got if a.cycle == 0))
    assert sum(counts.in_cycle(2).values()) == 32 - 24


def test_the_ab_stream_is_reproducible(tmp_path):
    names, devs = names_devs()
    one = make_store(tmp_path / "one", names, devs, [A, B], seed="ab").advance(20).items
    two = make_store(tmp_path / "two", list(reversed(names)), devs, [B, A], seed="ab").advance(20).items  # input order is irrelevant
    assert [(a.pair, a.script) for a in one] == [(a.pair, a.script) for a in two]
    other = make_store(tmp_path / "other", names, devs, [A, B], seed="another").advance(20).items
    assert [(a.pair, a.script) for a in other] != [(a.pair, a.script) for a in one]


def test_a_removed_variant_leaves_the_stream(tmp_path):
    names, devs = names_devs()
    make_store(tmp_path, names, devs, [A, B, C], seed="ab").advance(4)
    after = make_store(tmp_path, names, devs, [A, B], seed="ab").advance(12).items  # C's file entry is gone
    assert C not in {a.script for a in after} and {a.script for a in after} == {A, B}


def test_select_keys_takes_single_keys_or_a_template_with_its_variants():
    keys = [A, C, B, "seguimiento-es"]
    assert select_keys(keys, ["followup-en"]) == ([A], [])  # a key is that one alone
    assert select_keys(keys, ["followup-en*"]) == ([A, C, B], [])  # the template and its variants
    assert select_keys(keys, [B, "seguimiento-es", "gone--x"]) == ([B, "seguimiento-es"], ["gone--x"])
    assert select_keys(keys, ["followup", "followup*"]) == ([], ["followup", "followup*"])  # no prefix matching
    assert rotation_templates({"HYBRID_AUDIO_ROTATION_TEMPLATES": f" {A}, {B} "}) == [A, B]
    assert rotation_templates({}) == []


# ------------------------------------------------------------------ in Dagster

NAMES = ["John", "Maria", "Zoë", "Ann"]
DEVELOPERS = ["Wyndham", "Hilton"]
K = 4
T0 = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A project with the shipped variants and an instance home after one full batch."""
    return warm_home(tmp_path_factory.mktemp("warm"), NAMES, DEVELOPERS, variants=True, drop_templates=("seguimiento-es",))


class Env:
    def __init__(self, root: Path, instance: dg.DagsterInstance):
        self.instance, self.paths = instance, ProjectPaths(root=str(root))
        self.defs = build_defs({"paths": self.paths, "tts": NoCallTTS(), "spend_guard": SpendGuardResource()})

    def tick(self, when: datetime) -> tuple[list[dg.RunRequest], dict]:
        """One schedule tick and its advance run: (messages requests, the advance's metadata)."""
        schedule = build_rotation_schedule(settings=RotationSettings(batch_size=K))
        with dg.build_schedule_context(instance=self.instance, scheduled_execution_time=when) as ctx:
            advance = schedule(ctx)
        # the selection is resolved when the tick is evaluated and travels in the run config
        assert advance.run_config["ops"]["rotation_advance"]["config"]["templates"] == rotation_templates()
        result = self.execute(advance)
        assert result.success
        # the tick's run also records the rotation's outlook (rotation_outlook)
        [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("rotation_advance")]
        requests = rotation_requests(self.instance, result.dagster_run)
        for record in [r for r in requests if r.tags[STAGE_TAG] == "record"]:
            assert self.execute(record).success
        md = {k: v.value for k, v in event.materialization.metadata.items()}
        return [r for r in requests if r.tags[STAGE_TAG] == "messages"], md

    def execute(self, req: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return execute_request(self.defs, self.instance, req, QUIET)


@pytest.fixture
def env(warm, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_AUDIO_ROTATION_TEMPLATES", f"{A},{B}")  # an A/B test of followup-en vs soft_warm
    root, home = tmp_path / "project", tmp_path / "home"
    shutil.copytree(warm[0], root)
    shutil.copytree(warm[1], home)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield Env(root, instance)


def per_template(requests) -> Counter:
    out: Counter = Counter()
    for r in requests:
        template = r.partition_key.split("|")[1] if "|" in r.partition_key else r.partition_key
        out[template] += len(r.run_config["ops"]["messages"]["config"]["names"])
    return out


@pytest.mark.slow
def test_ab_rotation_alternates_the_variants_and_counts_them(env, monkeypatch, capsys):
    expected = [a.script for a in open_rotation(env.paths).store.preview(3 * K)]
    assert all(x != y for x, y in zip(expected, expected[1:])) and set(expected) == {A, B}
    for day in range(3):
        requests, md = env.tick(T0 + timedelta(days=day))
        assert per_template(requests) == {A: K // 2, B: K // 2} == md["template_counts"]
        for req in requests:  # each variant's messages are built and verify bit-exactly
            assert env.execute(req).success
    for template in (A, B):
        for dev in env.instance.get_dynamic_partitions("developers"):
            checked, problems = verify_partition(env.paths, template, dev)
            assert problems == [] and checked == len(NAMES)

    status = rotation_status_metadata(env.paths)
    assert status["rotation_templates"].value == [A, B]
    assert status["cycle"] == 1  # 12 pairs of an 8-pair cycle
    assert status["template_counts"].value == {A: 2, B: 2}  # this cycle's
    assert status["template_counts_total"].value == dict(Counter(expected)) == {A: 6, B: 6}
    assert f"| `{C}` |" not in status["variants"].value and f"| `{B}` | soft_warm | yes | 2 | 6 |" in status["variants"].value
    result = dg.materialize([rotation_cycle], partition_key="cycle-0000", instance=env.instance, resources={"paths": env.paths})
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["template_counts"].value == {A: K, B: K}  # the 8 pairs of cycle 0

    # `hybrid-audio rotation status` prints them (its admin run returns this metadata)
    monkeypatch.setattr(cli_rotation, "_admin", lambda action, **config: plain_metadata(rotation_status_metadata(env.paths)))
    monkeypatch.setattr(cli_rotation, "_recorded", lambda: None)  # no webserver here: the reading run's answer
    # the app's callback resets the CLI state per invocation; called directly, start from text mode
    # (an earlier CLI test in this process may have left --json on)
    monkeypatch.setattr(cli_common.STATE, "json", False)
    capsys.readouterr()
    cli_rotation.status(json_=False)
    printed = capsys.readouterr().out
    assert f"template {A}: 2 this cycle, 6 in all" in printed and f"template {B}: 2 this cycle, 6 in all" in printed


def test_a_variant_removed_mid_test_is_dropped_without_a_traceback(env, monkeypatch):
    requests, _ = env.tick(T0)  # handed out, never run: they wait in the ledger
    assert per_template(requests)[B] == K // 2
    path = env.paths.templates / f"{A}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["variants"]["soft_warm"]
    path.write_text(json.dumps(data), encoding="utf-8")
    run_full_batch(env.instance, {"paths": env.paths, "tts": NoCallTTS()})  # retires it, as for a template
    assert B not in env.instance.get_dynamic_partitions("templates") and not (env.paths.output / B).exists()

    later = T0 + timedelta(days=1, hours=2)  # past the launch grace: the first tick's requests count as failed
    requests, md = env.tick(later)
    assert set(per_template(requests)) == {A}
    ledger = RetryLedger.for_paths(env.paths).read()
    assert {a["template"] for a in ledger["abandoned"]} == {B} and not any(p["template"] == B for p in ledger["pending"])
    status = rotation_status_metadata(env.paths)
    assert status["rotation_templates"].value == [A] and status["rotation_templates_unmatched"].value == [B]
    assert f"| `{B}` | removed | no |" in status["variants"].value  # its past count stays visible

    monkeypatch.setenv("HYBRID_AUDIO_ROTATION_TEMPLATES", B)  # only the removed one: a clear error, not a traceback
    with pytest.raises(DatasetError, match="matches no template or variant"):
        open_rotation(env.paths)
