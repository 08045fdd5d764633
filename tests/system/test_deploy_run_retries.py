"""Run monitoring and run retries of deploy/dagster.postgres.yaml on a real Postgres (testkit/postgres.py):
a run worker killed with kill -9 is failed, its pool slot freed and the run retried, by a real
code server and daemon on loopback. (Its own file, apart from the README deployment in
test_deploy_postgres.py, so pytest-xdist can run the two on different workers.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from testkit.postgres import write_postgres_home
from testkit.servers import ServerProcess, free_port, wait_until

# real processes (batches, a daemon, Postgres): make test-slow, not make test
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
RETRY_CURSOR = f"EVENT_LOG_CONSUMER_CURSOR-{dg.DagsterEventType.RUN_FAILURE.value}"  # the retry daemon's cursor (Dagster 1.13)


# -- run monitoring and run retries on Postgres -----------------------------------------------
CRASHY_DEFS = '''
import os, time
import dagster as dg

@dg.asset(pool="tts")
def crashy_tts() -> None:
    """First attempt: says where it runs, then hangs until killed; a retry succeeds."""
    marker = os.environ["CRASHY_MARKER"]
    if not os.path.exists(marker):
        with open(marker + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {os.getppid()}")
        os.replace(marker + ".tmp", marker)
        time.sleep(600)

defs = dg.Definitions(assets=[crashy_tts], jobs=[dg.define_asset_job("crashy_job", [crashy_tts])])
'''


@pytest.mark.timeout(600)
def test_killed_run_is_failed_its_pool_slot_freed_and_retried(pg_database, tmp_path):
    """deploy/dagster.postgres.yaml's run monitoring and retries with the default run
    launcher: kill -9 of a run worker holding the `tts` slot → the run is marked FAILURE, the
    daemon frees the slot, and the retry run gets it and succeeds — no manual step.
    (Intervals shortened for the test; everything else is the production file.)"""
    home = write_postgres_home(
        tmp_path / "home",
        pg_database,
        overrides={
            "run_monitoring": {"poll_interval_seconds": 1, "free_slots_after_run_end_seconds": 2},
            "run_coordinator": {"config": {"dequeue_interval_seconds": 1}},
        },
    )
    (tmp_path / "crashy.py").write_text(CRASHY_DEFS)
    marker = tmp_path / "first_attempt"
    port = free_port()
    (tmp_path / "workspace.yaml").write_text(f"load_from:\n  - grpc_server: {{host: 127.0.0.1, port: {port}, location_name: crashy}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CARTESIA_"))}
    env.update(DAGSTER_HOME=str(home), CRASHY_MARKER=str(marker), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    procs: list[ServerProcess] = []

    def alive():
        for p in procs:
            if not p.alive():
                raise AssertionError(f"{p.name} exited:\n{p.log_tail()}")

    try:
        procs.append(
            ServerProcess(
                "code-server",
                [
                    "dagster",
                    "code-server",
                    "start",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-f",
                    str(tmp_path / "crashy.py"),
                    "--location-name",
                    "crashy",
                ],
                env=env,
                cwd=tmp_path,
                log_dir=tmp_path,
            )
        )
        wait_until(
            lambda: (
                subprocess.run(
                    ["dagster", "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)], env=env, capture_output=True, timeout=30
                ).returncode
                == 0
            ),
            timeout_s=120,
            interval_s=1,
            what="the code server",
            alive=alive,
        )
        procs.append(
            ServerProcess(
                "daemon", ["dagster-daemon", "run", "-w", str(tmp_path / "workspace.yaml")], env=env, cwd=tmp_path, log_dir=tmp_path
            )
        )
        # Dagster's retry daemon starts from the end of the event log on its first pass: a run that
        # failed before that pass is never retried (CI saw this once on a loaded machine). Launch
        # only once the daemon has recorded its cursor for run failures.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_until(
                lambda: instance.daemon_cursor_storage.get_cursor_values({RETRY_CURSOR}),
                timeout_s=180,
                interval_s=0.5,
                what="the retry daemon's first pass",
                alive=alive,
            )
        run_id = str(uuid.uuid4())
        r = subprocess.run(
            ["dagster", "job", "launch", "-w", str(tmp_path / "workspace.yaml"), "-l", "crashy", "-j", "crashy_job", "--run-id", run_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        try:
            pids = wait_until(
                lambda: marker.exists() and marker.read_text(),
                timeout_s=180,
                interval_s=0.5,
                what="the first attempt to start",
                alive=alive,
            )
        except AssertionError as exc:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                run = instance.get_run_by_id(run_id)
            logs = "\n".join(f"--- {p.name} ---\n{p.log_tail(3000)}" for p in procs)
            raise AssertionError(f"{exc}; run status {run.status if run else None}\n{logs}") from None
        step_pid, worker_pid = map(int, pids.split())
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
            assert [s.run_id for s in instance.event_log_storage.get_concurrency_info("tts").claimed_slots] == [run_id]

            t0 = time.monotonic()
            for pid in (worker_pid, step_pid):  # the run worker and its step process, as an OOM kill would
                os.kill(pid, signal.SIGKILL)
            wait_until(
                lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE,
                timeout_s=60,
                what="the killed run to be marked FAILURE",
                alive=alive,
            )
            failed_s = time.monotonic() - t0
            wait_until(
                lambda: run_id not in {s.run_id for s in instance.event_log_storage.get_concurrency_info("tts").claimed_slots},
                timeout_s=120,
                what="run monitoring to free the killed run's tts slot",
                alive=alive,
            )
            freed_s = time.monotonic() - t0
            retry = wait_until(
                lambda: next(iter(instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))), None),
                timeout_s=300,
                what="the retry run",
                alive=alive,
            )  # the retry daemon is slow on a loaded machine
            wait_until(lambda: instance.get_run_by_id(retry.run_id).is_finished, timeout_s=180, what="the retry to finish", alive=alive)
            assert instance.get_run_by_id(retry.run_id).status == dg.DagsterRunStatus.SUCCESS
            retried_s = time.monotonic() - t0
            assert not instance.event_log_storage.get_concurrency_info("tts").claimed_slots
        print(f"kill -9 → FAILURE {failed_s:.1f}s, slot freed {freed_s:.1f}s, retry SUCCESS {retried_s:.1f}s")
    finally:
        for p in reversed(procs):
            p.stop()
