"""The rotation in Dagster: the rotation_cycle asset, the rotation schedule, the retry ledger.

One warm project (datasets, stems and messages made once by the full batch on a persistent
sqlite instance) is copied for every test, so each test starts from the same state.
"""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.core.messages.manifest import manifest_path, read_manifest
from hybrid_audio_dagster.core.messages.plan import message_path
from hybrid_audio_dagster.core.rotation.campaign import open_rotation, rotation_dir
from hybrid_audio_dagster.core.rotation.ledger import read_audit
from hybrid_audio_dagster.core.rotation.retry_ledger import RetryLedger
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.definitions import build_defs, defs
from hybrid_audio_dagster.defs.datasets.assets import names_dataset
from hybrid_audio_dagster.defs.metadata_index import latest_metadata
from hybrid_audio_dagster.defs.pipeline.sensors import rotation_requests
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import OfflineTTSResource
from hybrid_audio_dagster.defs.rotation.assets import rotation_cycle
from hybrid_audio_dagster.defs.rotation.plan import BATCH_TAG, RotationSettings
from hybrid_audio_dagster.defs.rotation.schedules import (
    ROTATION_CRON,
    build_rotation_schedule,
    rotation_schedule,
    rotation_schedule_from_env,
)
from hybrid_audio_dagster.defs.rotation.tick import generate_next_pair, preview_pairs
from hybrid_audio_dagster.defs.stems.assets import name_stems
from hybrid_audio_dagster.defs.tags import STAGE_TAG
from testkit.project import write_csv
from tests.support.campaign import NoCallTTS
from tests.support.rotation import execute_request, warm_home

NAMES = ["John", "Maria", "Zoë", "Ann"]
DEVELOPERS = ["Wyndham", "Hilton", "Marriott"]
K = 4
T0 = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A project and an instance home after one full batch (made once per module)."""
    return warm_home(tmp_path_factory.mktemp("warm"), NAMES, DEVELOPERS)


class Env:
    def __init__(self, root: Path, instance: dg.DagsterInstance):
        self.root = root
        self.instance = instance
        self.paths = ProjectPaths(root=str(root))
        self.defs = build_defs({"paths": self.paths, "tts": NoCallTTS(), "spend_guard": SpendGuardResource()})

    def tick(self, when: datetime, schedule: dg.ScheduleDefinition | None = None):
        """The schedule's tick, its advance run, then what pipeline_sensor asks for: the
        cycle records are run here, the messages requests returned."""
        schedule = schedule or build_rotation_schedule(settings=RotationSettings(batch_size=K))
        with dg.build_schedule_context(instance=self.instance, scheduled_execution_time=when) as ctx:
            advance = schedule(ctx)
        assert advance.run_key == f"rotation:{when.isoformat()}" and advance.job_name == "rotation_advance_job"
        result = self.execute(advance)
        if not result.success:
            [failure] = [e for e in result.all_events if e.is_step_failure]
            error = failure.step_failure_data.error
            raise RuntimeError(error.message + "".join(c.message for c in [error.cause] if c is not None))
        requests = rotation_requests(self.instance, result.dagster_run)
        for record in [r for r in requests if r.tags[STAGE_TAG] == "record"]:
            assert self.execute(record).success
        return [r for r in requests if r.tags[STAGE_TAG] == "messages"]

    def execute(self, req: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return execute_request(self.defs, self.instance, req, QUIET)

    def status(self):
        return open_rotation(self.paths).store.status()


@pytest.fixture
def env(warm, tmp_path):
    root, home = tmp_path / "project", tmp_path / "home"
    shutil.copytree(warm[0], root)
    shutil.copytree(warm[1], home)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield Env(root, instance)


def triples(requests) -> list[tuple[str, str, str]]:
    """(name, developer, template) of every pair in some run requests."""
    out = []
    for r in requests:
        dims = (
            dg.MultiPartitionsDefinition(
                {"template": dg.StaticPartitionsDefinition(["x"]), "developer": dg.StaticPartitionsDefinition(["y"])}
            )
            .get_partition_key_from_str(r.partition_key)
            .keys_by_dimension
        )
        out += [(n, dims["developer"], dims["template"]) for n in r.run_config["ops"]["messages"]["config"]["names"]]
    return out


def test_definitions(monkeypatch):
    assert rotation_schedule.cron_schedule == ROTATION_CRON == "0 9 * * *"
    assert rotation_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert rotation_schedule.job_name == "rotation_advance_job"
    assert defs.get_schedule_def("rotation_schedule").cron_schedule == ROTATION_CRON
    assert defs.get_assets_def("rotation_cycle").key == dg.AssetKey("rotation_cycle")
    custom = rotation_schedule_from_env({"HYBRID_AUDIO_ROTATION_CRON": "0 10 * * 1-5", "HYBRID_AUDIO_ROTATION_TZ": "Europe/Madrid"})
    assert custom.cron_schedule == "0 10 * * 1-5" and custom.execution_timezone == "Europe/Madrid"
    assert RotationSettings().resolved_batch_size({}) == 50
    assert RotationSettings().resolved_batch_size({"HYBRID_AUDIO_ROTATION_BATCH": "7"}) == 7
    with pytest.raises(ValueError, match="HYBRID_AUDIO_ROTATION_BATCH"):
        RotationSettings().resolved_batch_size({"HYBRID_AUDIO_ROTATION_BATCH": "many"})
    dg.Definitions.validate_loadable(defs)


@pytest.mark.slow
def test_same_tick_twice_same_run_keys_and_one_advance(env, monkeypatch):
    monkeypatch.setenv("HYBRID_AUDIO_ROTATION_BATCH", str(K))
    first = env.tick(T0, rotation_schedule)  # the registered schedule, K from the environment
    second = env.tick(T0, rotation_schedule)
    assert isinstance(first, list) and first
    assert [r.run_key for r in first] == [r.run_key for r in second]
    assert [(r.partition_key, r.run_config, r.tags) for r in first] == [(r.partition_key, r.run_config, r.tags) for r in second]
    assert all(r.run_key.startswith(f"rotation:{T0.isoformat()}:") for r in first)
    assert len(triples(first)) == K
    status = env.status()
    assert (status.cycle, status.cursor) == (0, K)
    advances = [r for r in read_audit(env.paths.logs / "rotation_audit.jsonl") if r["event"] == "advance"]
    assert len(advances) == 1
    assert {r.tags[BATCH_TAG] for r in first} == {str(advances[0]["seq"])}

    # a crash after the advance committed but before the plan was stored: the store replays
    (rotation_dir(env.paths) / "retry_ledger.json").unlink()
    third = env.tick(T0, rotation_schedule)
    assert [r.run_key for r in third] == [r.run_key for r in first]
    assert env.status().cursor == K


@pytest.mark.slow
def test_later_ticks_advance_without_repeating_pairs(env):
    seen: list[tuple[str, str]] = []
    for day in range(3):  # 3 × 4 = the whole 4 × 3 cycle
        requests = env.tick(T0 + timedelta(days=day))
        pairs = [(n, d) for n, d, _ in triples(requests)]
        assert len(pairs) == K
        seen += pairs
        assert env.status().cursor == K * (day + 1) or env.status().cursor == 12
        for req in requests:  # settle them so nothing is retried
            assert env.execute(req).success
    assert len(seen) == len(set(seen)) == len(NAMES) * len(DEVELOPERS)
    nxt = env.tick(T0 + timedelta(days=3))
    assert env.status().cycle == 1
    assert len(triples(nxt)) == K


def test_requested_runs_write_exactly_those_messages(env):
    shutil.rmtree(env.paths.output)
    requests = env.tick(T0)
    for req in requests:
        result = env.execute(req)
        assert result.success
        assert result.dagster_run.tags[BATCH_TAG] == req.tags[BATCH_TAG]
    expected = {message_path(env.paths.output, t, d, n) for n, d, t in triples(requests)}
    assert set(env.paths.output.rglob("*.wav")) == expected
    for req in requests:
        (n, d, t), *_ = triples([req])
        rows = read_manifest(manifest_path(env.paths.output, t, d))
        assert sorted(r["name_key"] for r in rows) == sorted(req.run_config["ops"]["messages"]["config"]["names"])
    # the next tick sees them succeeded: no retry, nothing pending
    later = env.tick(T0 + timedelta(days=1))
    assert not any(":attempt" in r.run_key for r in later)
    ledger = RetryLedger.for_paths(env.paths).read()
    assert ledger["pending"] == [] and ledger["abandoned"] == []
    assert {o["run_key"] for o in ledger["outstanding"]} == {r.run_key for r in later}


@pytest.mark.slow
def test_failed_run_pairs_come_back_until_they_succeed(env):
    shutil.rmtree(env.paths.output)  # messages must really be built, so a missing stem file fails them
    requests = env.tick(T0)
    victim, _, tid = triples(requests)[0]
    md = latest_metadata(env.instance, dg.AssetKey("name_stems"), [victim])[victim]
    tpl = load_templates(env.paths.templates)[tid]
    sig = md["slots"][f"{tid}/{tpl.segments_of(SegmentKind.NAME)[0].id}"]
    stem = env.paths.stems / md["stems"][sig]["path"]
    saved = stem.read_bytes()
    stem.unlink()

    failed = []
    for req in requests:
        result = env.execute(req)
        (_, _, t), *_ = triples([req])
        names = req.run_config["ops"]["messages"]["config"]["names"]
        assert result.success == (not (t == tid and victim in names))
        if not result.success:
            failed.append(req)
    assert failed

    stem.write_bytes(saved)
    later = env.tick(T0 + timedelta(days=1))
    retries = [r for r in later if ":attempt2" in r.run_key]
    assert sorted(triples(retries)) == sorted(triples(failed))
    assert all(r.tags["hybrid_audio/rotation_attempt"] == "2" for r in retries)
    fresh = [r for r in later if ":attempt" not in r.run_key]
    assert len(triples(fresh)) == K  # the advance still happened, K new pairs
    assert env.status().cursor == 2 * K
    for req in later:
        assert env.execute(req).success

    third = env.tick(T0 + timedelta(days=2))
    assert not any(":attempt" in r.run_key for r in third)
    ledger = RetryLedger.for_paths(env.paths).read()
    assert ledger["pending"] == [] and ledger["abandoned"] == []
    assert ledger["ticks"][-2][1]["reconciled"]["succeeded"]  # the retries were seen succeeding


def test_never_launched_runs_are_retried_and_abandoned_after_max_attempts(env):
    settings = RotationSettings(batch_size=2, max_attempts=2)
    schedule = build_rotation_schedule(settings=settings)
    first = env.tick(T0, schedule)
    mid = env.tick(T0 + timedelta(minutes=30), schedule)  # within the launch grace: no retry yet
    assert mid and not any(":attempt" in r.run_key for r in mid)
    second = env.tick(T0 + timedelta(days=1), schedule)  # nothing ever ran: both ticks' pairs retried
    assert sorted(triples([r for r in second if ":attempt2" in r.run_key])) == sorted(triples(first) + triples(mid))
    third = env.tick(T0 + timedelta(days=2), schedule)  # failed twice: abandoned, reported
    assert not any(":attempt3" in r.run_key for r in third)
    ledger = RetryLedger.for_paths(env.paths).read()
    abandoned = {(a["name"], a["developer"], a["template"]) for a in ledger["abandoned"]}
    assert set(triples(first)) <= abandoned
    assert all("never launched" in a["reason"] for a in ledger["abandoned"])


@pytest.mark.slow
def test_pairs_without_stems_are_deferred_then_launched(env):
    write_csv(env.root / "data" / "names.csv", "name", NAMES + ["Priya"])
    dg.materialize([names_dataset], instance=env.instance, resources={"paths": env.paths})  # no stems yet
    schedule = build_rotation_schedule(settings=RotationSettings(batch_size=15))  # the whole 5 × 3 cycle
    first = env.tick(T0, schedule)
    assert "priya" not in {n for n, _, _ in triples(first)}
    assert len(triples(first)) == 12
    ledger = RetryLedger.for_paths(env.paths).read()
    assert {p["name"] for p in ledger["pending"]} == {"priya"} and len(ledger["pending"]) == 3
    assert all("stems not ready" in p["reason"] for p in ledger["pending"])

    dg.materialize(
        [name_stems],
        partition_key="priya",
        instance=env.instance,
        resources={"paths": env.paths, "tts": OfflineTTSResource(), "spend_guard": SpendGuardResource(), "gcs": DeliveryResource()},
        selection=[name_stems],
    )
    for req in first:
        assert env.execute(req).success
    second = env.tick(T0 + timedelta(days=1), schedule)
    late = [t for t in triples(second) if t[0] == "priya" and t in {(p["name"], p["developer"], p["template"]) for p in ledger["pending"]}]
    assert len(late) == 3
    for req in second:
        assert env.execute(req).success
    assert all(message_path(env.paths.output, t, d, n).exists() for n, d, t in late)


def test_rotation_asset_reports_progress_and_does_not_advance(env):
    env.tick(T0)
    state = rotation_dir(env.paths) / "state.json"
    before = state.read_bytes()
    audit_before = len(read_audit(env.paths.logs / "rotation_audit.jsonl"))
    result = dg.materialize([rotation_cycle], partition_key="cycle-0000", instance=env.instance, resources={"paths": env.paths})
    [event] = result.get_asset_materialization_events()
    md = {k: v.value for k, v in event.materialization.metadata.items()}
    assert state.read_bytes() == before
    assert len(read_audit(env.paths.logs / "rotation_audit.jsonl")) == audit_before
    assert (md["cycle"], md["cursor"], md["cycle_length"]) == (0, K, len(NAMES) * len(DEVELOPERS))
    assert md["progress_pct"] == pytest.approx(100 * K / 12, abs=0.01)
    assert md["skipped"] == 0 and md["retry_outstanding"] > 0
    table = md["preview"]
    upcoming = preview_pairs(env.paths, 20)
    assert len(table.strip().splitlines()) == 2 + 20
    assert upcoming[0]["name_display"] in table and upcoming[0]["developer_display"] in table
    assert set(md["fingerprints"]["snapshots"]) == {"names", "developers"}
    assert md["last_tick"]["tick"] == T0.isoformat()
    # and the next tick hands out exactly the previewed pairs (plus the first tick's, never run)
    nxt = [r for r in env.tick(T0 + timedelta(days=1)) if ":attempt" not in r.run_key]
    assert sorted(triples(nxt)) == sorted((u["name"], u["developer"], u["template"]) for u in upcoming[:K])


def test_generate_next_pair(env):
    shutil.rmtree(env.paths.output)
    upcoming = preview_pairs(env.paths, 3)
    pair = generate_next_pair(env.instance, env.paths, request_id="req-1")
    assert pair.ready and (pair.name, pair.developer, pair.template) == (
        upcoming[0]["name"],
        upcoming[0]["developer"],
        upcoming[0]["template"],
    )
    again = generate_next_pair(env.instance, env.paths, request_id="req-1")  # a retried call
    assert again.run_key == pair.run_key and again.name == pair.name
    assert preview_pairs(env.paths, 1)[0] == upcoming[1]
    result = env.execute(pair.to_run_request())
    assert result.success
    assert list(env.paths.output.rglob("*.wav")) == [message_path(env.paths.output, pair.template, pair.developer, pair.name)]
    assert json.loads(json.dumps(pair.run_config)) == {"ops": {"messages": {"config": {"names": [pair.name], "force": False}}}}
    # the schedule's next tick sees the CLI run succeed
    env.tick(T0)
    assert pair.run_key in RetryLedger.for_paths(env.paths).read()["ticks"][-1][1]["reconciled"]["succeeded"]


def test_pairs_of_a_tick_that_failed_after_advancing_are_not_lost(env, monkeypatch):
    import hybrid_audio_dagster.defs.rotation.reconcile as rs  # where _plan_requests looks stem_problems up

    def broken(*args, **kwargs):
        raise RuntimeError("instance unavailable")

    with monkeypatch.context() as m:
        m.setattr(rs, "stem_problems", broken)
        with pytest.raises(RuntimeError, match="instance unavailable"):  # the advance run fails
            env.tick(T0)
    assert env.status().cursor == K  # the advance committed
    handed_out = {(a["name"], a["developer"], a["template"]) for a in RetryLedger.for_paths(env.paths).read()["pending"]}
    assert len(handed_out) == K
    later = env.tick(T0 + timedelta(days=1))  # a different tick: the staged pairs are launched with its own
    assert handed_out <= set(triples(later))
    assert len(triples(later)) == 2 * K
    assert RetryLedger.for_paths(env.paths).read()["pending"] == []


def test_a_rotation_tick_only_decides(env):
    """Evaluating the schedule (twice, or "Test schedule" in the UI) asks for the same run and
    changes nothing: the advance happens in the run."""
    state, audit = rotation_dir(env.paths) / "state.json", env.paths.logs / "rotation_audit.jsonl"
    before = (state.read_bytes() if state.exists() else None, len(read_audit(audit)) if audit.exists() else 0)
    schedule = build_rotation_schedule(settings=RotationSettings(batch_size=K))
    requests = []
    for _ in range(2):
        with dg.build_schedule_context(instance=env.instance, scheduled_execution_time=T0) as ctx:
            requests.append(schedule(ctx))
    a, b = requests
    assert (a.run_key, a.job_name, a.run_config, a.tags) == (b.run_key, b.job_name, b.run_config, b.tags)
    assert a.run_config["ops"]["rotation_advance"]["config"]["batch_size"] == K
    assert (state.read_bytes() if state.exists() else None, len(read_audit(audit)) if audit.exists() else 0) == before
    assert env.status().cursor == 0
