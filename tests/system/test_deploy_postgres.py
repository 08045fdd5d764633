"""The production deployment: deploy/dagster.postgres.yaml on a real Postgres (testkit/postgres.py),
and deploy/README.md followed verbatim (its marked command blocks are read from the file and
run as written: code server, webserver, daemon on loopback), then a run through the queue."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from testkit.postgres import DEPLOY_ENV, DEPLOY_YAML
from testkit.project import make_project
from testkit.servers import (
    ServerProcess,
    free_port,
    graphql,
    loaded_locations,
    run_tag,
    start_schedule_with_due_tick,
    stop_schedule,
    wait_for_pipeline,
    wait_until,
)

# real processes (batches, a daemon, Postgres): make test-slow, not make test
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "deploy" / "README.md"
BIN = Path(sys.executable).parent
DATASET_ASSETS = ["names_dataset", "developers_dataset", "message_templates"]


# -- the instance config --------------------------------------------------------------------
@dg.asset(pool="tts")
def deploy_probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"probe": 1})


def test_instance_config_uses_postgres_storage(postgres_instance, pg_database):
    instance = postgres_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    result = dg.materialize([deploy_probe], instance=instance)
    assert result.success
    run_id = result.run_id
    # the rows are in Postgres, seen with a plain SQL client
    assert pg_database.query("SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    [(n,)] = pg_database.query(
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,)
    )
    assert n == 1
    # and through the instance API
    event = instance.get_latest_materialization_event(dg.AssetKey("deploy_probe"))
    assert event is not None and event.run_id == run_id
    # the asset's pool got the yaml's default limit (one step at a time) and the slot is free again
    info = instance.event_log_storage.get_concurrency_info("tts")
    assert info.slot_count == 1
    assert not info.claimed_slots


def test_deploy_yaml_loads_verbatim_from_env(pg_database, tmp_path, monkeypatch):
    """deploy/dagster.postgres.yaml as shipped: connection settings from DAGSTER_PG_*, every
    key accepted by Dagster 1.13, and the limits the README promises."""
    for k, v in pg_database.env.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DEPLOY_YAML.read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert {"key": "hybrid_audio/trigger", "value": "nightly", "limit": 1} in queue.tag_concurrency_limits
        assert instance.global_op_concurrency_default_limit == 1
        assert instance.run_monitoring_enabled
        monitoring = instance.run_monitoring_settings
        assert monitoring["free_slots_after_run_end_seconds"] > 0
        assert monitoring["max_resume_run_attempts"] == 0  # the default launcher cannot resume
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert instance.get_settings("telemetry") == {"enabled": False}
        assert not instance.run_launcher.supports_resume_run
    # nothing secret is written in the file itself
    assert pg_database.password not in DEPLOY_YAML.read_text()


def test_embedded_sqlite_default_still_loads(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.global_op_concurrency_default_limit == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
        assert instance.run_monitoring_enabled  # valid with the default run launcher (no resume)
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


# -- deploy/README.md, verbatim -----------------------------------------------------------------
def readme_blocks() -> dict[str, str]:
    """``<!-- deploy-test: NAME -->`` followed by a fenced bash block → {NAME: its text}."""
    text = README.read_text(encoding="utf-8")
    blocks = dict(re.findall(r"<!-- deploy-test: ([\w-]+) -->\s*```(?:bash|sh)\n(.*?)```", text, flags=re.S))
    missing = {"env", "setup", "code-server", "code-server-ready", "webserver", "daemon", "check"} - blocks.keys()
    assert not missing, f"deploy/README.md lost its marked blocks {sorted(missing)}"
    return blocks


def exported_names(env_block: str) -> list[str]:
    return re.findall(r"^export ([A-Z_][A-Z0-9_]*)=", env_block, flags=re.M)


def test_readme_documents_the_environment():
    blocks = readme_blocks()
    names = exported_names(blocks["env"])
    for var in (
        "DAGSTER_HOME",
        "HYBRID_AUDIO_ROOT",
        "TTS_ENGINE",
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        assert var in names, var
    for var in ("CARTESIA_API_KEY", "CARTESIA_BASE_URL"):
        assert var in blocks["env"], var
    # the variables the yaml files read are the ones the README exports
    read = set(re.findall(r"env: (\w+)", DEPLOY_YAML.read_text() + (ROOT / "deploy" / "workspace.grpc.yaml").read_text()))
    assert read <= set(names), read - set(names)
    # every process command is one line: it is run exactly as written
    for name in ("code-server", "webserver", "daemon", "check"):
        assert len(blocks[name].strip().splitlines()) == 1, name


LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on UnauthorizedError { message }
  }
}"""

REPOSITORIES = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  name location { name } jobs { name } } } } }"""

RUN_STATUS = """query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""

DAEMON_HEALTH = """{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"""


class Deployment:
    def __init__(self, env: dict, url: str, procs: dict[str, ServerProcess], project: Path, timings: dict):
        self.env, self.url, self.procs, self.project, self.timings = env, url, procs, project, timings

    def alive(self) -> None:
        for name, p in self.procs.items():
            if not p.alive():
                raise AssertionError(f"{name} exited ({p.proc.returncode}):\n{p.log_tail()}")

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{p.log_tail(1500)}" for n, p in self.procs.items())

    def bash(self, script: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def deployment(postgres, tmp_path_factory):
    """deploy/README.md sections 2-4 with this test's values: a throwaway Postgres database,
    DAGSTER_HOME and project folder, free loopback ports."""
    blocks = readme_blocks()
    db = postgres.create_database("deploy_readme", with_dagster_schema=False)  # `dagster instance migrate` creates it
    tmp = tmp_path_factory.mktemp("deploy")
    project = tmp / "project"
    make_project(project, ["John", "Maria", "Zoë"], ["Wyndham", "Hilton Grand Vacations"])
    values = {
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "HYBRID_AUDIO_ROOT": str(project),
        **db.env,
        **DEPLOY_ENV,
        "HYBRID_AUDIO_CODE_SERVER_HOST": "127.0.0.1",
        "HYBRID_AUDIO_CODE_SERVER_PORT": str(free_port()),
        "HYBRID_AUDIO_WEBSERVER_PORT": str(free_port()),
        "TTS_ENGINE": "offline",
        "HYBRID_AUDIO_PIPELINE_SENSOR_S": "2",
    }
    unknown = set(exported_names(blocks["env"])) - values.keys()
    assert not unknown, f"deploy/README.md exports {sorted(unknown)}: give them a test value here"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARTESIA_", "DAGSTER_", "HYBRID_AUDIO_", "TTS_"))}
    env.update(values, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    timings: dict[str, float] = {}
    procs: dict[str, ServerProcess] = {}
    try:
        t0 = time.monotonic()
        dep = Deployment(env, f"http://127.0.0.1:{values['HYBRID_AUDIO_WEBSERVER_PORT']}", procs, project, timings)
        r = dep.bash(blocks["setup"], timeout_s=180)
        assert r.returncode == 0, f"setup block failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        timings["setup_s"] = time.monotonic() - t0

        t0 = time.monotonic()
        procs["code-server"] = ServerProcess("code-server", ["bash", "-c", blocks["code-server"]], env=env, cwd=ROOT, log_dir=tmp)
        wait_until(
            lambda: dep.bash(blocks["code-server-ready"], timeout_s=30).returncode == 0,
            timeout_s=120,
            interval_s=1,
            what="the code server to answer",
            alive=dep.alive,
        )
        timings["code_server_s"] = time.monotonic() - t0
        # the nightly schedule on, its last tick (the real 02:00 cron) already due: the daemon
        # fires it as it starts, the pipeline runs while the other tests look (nightly_pipeline)
        t0 = time.monotonic()
        start_schedule_with_due_tick(
            env, "nightly_batch_schedule", ROOT / "deploy" / "workspace.grpc.yaml", open_instance=lambda: _instance(dep)
        )
        timings["schedule_start_s"] = time.monotonic() - t0
        for name in ("webserver", "daemon"):
            procs[name] = ServerProcess(name, ["bash", "-c", blocks[name]], env=env, cwd=ROOT, log_dir=tmp)
        t0 = time.monotonic()
        dep.entries = wait_until(
            lambda: loaded_locations(dep.url), timeout_s=180, interval_s=1, what="the webserver to load the code location", alive=dep.alive
        )
        timings["webserver_s"] = time.monotonic() - t0
        yield dep
    finally:
        for p in reversed(list(procs.values())):
            p.stop()
        postgres.drop_database(db.dbname)
        print("deploy timings:", {k: round(v, 2) for k, v in timings.items()})


@pytest.mark.timeout(600)
def test_readme_deployment_loads_the_code_location(deployment):
    (entry,) = deployment.entries
    assert entry["name"] == "hybrid_audio"
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    r = deployment.bash(readme_blocks()["check"], timeout_s=60)
    assert r.returncode == 0 and "hybrid_audio: LOADED" in r.stdout, r.stdout + r.stderr
    # the pool limits the setup block stored are in Postgres
    with _instance(deployment) as instance:
        assert instance.event_log_storage.get_concurrency_info("tts").slot_count == 1
        assert instance.event_log_storage.get_concurrency_info("messages").slot_count == 1


def _instance(deployment) -> dg.DagsterInstance:
    """The deployment's instance, opened in this process with the deployment's DAGSTER_PG_*."""
    saved = {k: os.environ.get(k) for k in deployment.env if k.startswith("DAGSTER_PG_")}
    os.environ.update({k: deployment.env[k] for k in saved})
    try:
        return dg.DagsterInstance.from_config(deployment.env["DAGSTER_HOME"])
    finally:  # the values are read when the instance loads
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def nightly_pipeline(deployment):
    """(runs, pipeline id) of the nightly schedule's pipeline, whose tick the daemon fired as it
    started (the fixture above turned the schedule on with that tick due); the schedule is
    stopped again, so every test using this one sees a quiet instance afterwards."""
    try:
        return wait_for_pipeline(deployment.url, "nightly", timeout_s=300, alive=deployment.alive)
    finally:
        stop_schedule(deployment.url, "nightly_batch_schedule")


@pytest.mark.timeout(600)
def test_readme_deployment_a_scheduled_run_completes(deployment, nightly_pipeline):
    """The nightly schedule's pipeline through the queue on Postgres: the datasets run, the
    stems runs pipeline_sensor asks for, then the messages run, every message bit-exact."""
    runs, pipeline = nightly_pipeline
    mine = [r for r in runs if run_tag(r, "hybrid_audio/pipeline") == pipeline]
    assert {r["jobName"] for r in mine} >= {"datasets_job", "name_stems_job", "messages_job"}
    assert all(r["status"] == "SUCCESS" for r in mine)
    assert {run_tag(r, "dagster/schedule_name") for r in mine if r["jobName"] == "datasets_job"} == {"nightly_batch_schedule"}
    paths = ProjectPaths(root=str(deployment.project))
    for tid in ("followup-en", "seguimiento-es"):
        for dev in os.listdir(deployment.project / "output" / tid):
            checked, problems = verify_partition(paths, tid, dev)
            assert problems == [] and checked == 3


@pytest.mark.timeout(600)
def test_readme_deployment_runs_the_dataset_assets_through_the_queue(deployment, nightly_pipeline):
    """A datasets run launched over GraphQL goes through the queue (after the nightly pipeline,
    so it is the only run in flight and the latest materialization of the dataset assets)."""
    url = deployment.url
    repos = graphql(url, REPOSITORIES)["repositoriesOrError"]["nodes"]
    (repo,) = [r for r in repos if r["location"]["name"] == "hybrid_audio"]
    jobs = {j["name"] for j in repo["jobs"]}
    selector = {"repositoryLocationName": "hybrid_audio", "repositoryName": repo["name"]}
    if "datasets_job" in jobs:
        selector["jobName"] = "datasets_job"
    else:
        assert "__ASSET_JOB" in jobs, jobs
        selector.update(jobName="__ASSET_JOB", assetSelection=[{"path": [k]} for k in DATASET_ASSETS])

    t0 = time.monotonic()
    launched = graphql(url, LAUNCH_RUN, {"params": {"selector": selector, "runConfigData": {}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] == "QUEUED", launched  # the queued run coordinator, not a direct launch
    statuses: list[str] = []

    def finished():
        status = graphql(url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    final = wait_until(finished, timeout_s=300, interval_s=1, what=f"run {run_id} to finish", alive=deployment.alive)
    deployment.timings["run_s"] = time.monotonic() - t0
    assert final == "SUCCESS", f"{statuses}\n{deployment.logs()}"

    with _instance(deployment) as instance:
        types = [e.dagster_event.event_type for e in instance.all_logs(run_id) if e.dagster_event]
        # submitted to the queue, then launched by the daemon's run coordinator
        assert dg.DagsterEventType.RUN_ENQUEUED in types and dg.DagsterEventType.RUN_STARTING in types, types
        assert types.index(dg.DagsterEventType.RUN_ENQUEUED) < types.index(dg.DagsterEventType.RUN_STARTING)
        for key in DATASET_ASSETS:
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.run_id == run_id, key
    assert (deployment.project / "data").exists()

    daemons = graphql(url, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = {d["daemonType"]: d["healthy"] for d in daemons if d["required"]}
    for daemon in ("QUEUED_RUN_COORDINATOR", "MONITORING", "SCHEDULER", "SENSOR"):
        assert required.get(daemon), (daemon, required)
