"""Helpers for tests that start real servers on loopback: free ports, process groups that
are always stopped, bounded waits, GraphQL over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

LOCATIONS_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A command in its own process group, output to a log file; ``stop()`` ends the group
    (SIGTERM, then SIGKILL after ``grace_s``)."""

    def __init__(self, name: str, cmd: list[str], *, env: dict, cwd: Path, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace_s: float = 20) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                    self.proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    pass
            # children may outlive the group leader (run workers, the code server's child)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        finally:
            self._log.close()


def start_dagster_dev(env: dict, workspace: Path, log_dir: Path) -> tuple[ServerProcess, str]:
    """``dagster dev`` (webserver and daemon) over ``workspace`` on a free loopback port:
    (the process, its URL)."""
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    server = ServerProcess(
        "dagster-dev",
        [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=workspace.parent,
        log_dir=log_dir,
    )
    return server, f"http://127.0.0.1:{port}"


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str = "condition",
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy (returned), ``alive`` raises, or
    ``timeout_s`` passes (AssertionError naming ``what``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def graphql(url: str, query: str, variables: dict | None = None, timeout_s: float = 30) -> dict:
    """``data`` of a GraphQL answer from the webserver at ``url``; raises on errors."""
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout_s)
    r.raise_for_status()
    body = r.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def loaded_locations(url: str) -> list[dict] | None:
    """The workspace's location entries once every one is LOADED, else None (also while the
    webserver does not answer yet)."""
    try:
        ws = graphql(url, LOCATIONS_QUERY, timeout_s=5)["workspaceOrError"]
    except (httpx.HTTPError, AssertionError, KeyError, ValueError):
        return None
    entries = ws.get("locationEntries") or []
    return entries if entries and all(e["loadStatus"] == "LOADED" for e in entries) else None


START_SCHEDULE = """mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) { __typename
  ... on PythonError { message } } }"""
SCHEDULE_STATE = """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) { ... on Schedule {
  scheduleState { id selectorId } } } }"""
STOP_SCHEDULE = """mutation($id: String!, $origin: String!) { stopRunningSchedule(id: $id, scheduleOriginId: $origin) { __typename } }"""
RUNS_BY_TAG = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { __typename
  ... on Runs { results { runId jobName status parentRunId rootRunId tags { key value } } } } }"""


def schedule_selector(name: str, location: str = "hybrid_audio") -> dict:
    return {"repositoryLocationName": location, "repositoryName": "__repository__", "scheduleName": name}


def start_schedule(url: str, name: str) -> None:
    started = graphql(url, START_SCHEDULE, {"selector": schedule_selector(name)})["startSchedule"]
    assert started["__typename"] == "ScheduleStateResult", started


def stop_schedule(url: str, name: str) -> None:
    state = graphql(url, SCHEDULE_STATE, {"s": schedule_selector(name)})["scheduleOrError"]["scheduleState"]
    graphql(url, STOP_SCHEDULE, {"id": state["id"], "origin": state["selectorId"]})


def runs_by_tags(url: str, tags: dict[str, str]) -> list[dict]:
    data = graphql(url, RUNS_BY_TAG, {"tags": [{"key": k, "value": v} for k, v in tags.items()]})["runsOrError"]
    return data["results"]


def run_tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def wait_for_pipeline(url: str, trigger: str, *, timeout_s: float, alive=None) -> tuple[list[dict], str]:
    """(runs, pipeline id) of the first pipeline of ``trigger`` whose messages run succeeded."""

    def done():
        runs = runs_by_tags(url, {"hybrid_audio/trigger": trigger})
        failed = [r for r in runs if r["status"] == "FAILURE"]
        if failed:
            raise AssertionError(f"a pipeline run failed: {failed}")
        ok = [r for r in runs if r["jobName"] == "messages_job" and r["status"] == "SUCCESS"]
        return (runs, run_tag(ok[-1], "hybrid_audio/pipeline")) if ok else None

    return wait_until(done, timeout_s=timeout_s, interval_s=2, what=f"a {trigger} pipeline's messages run", alive=alive)


def start_schedule_with_due_tick(
    env: dict, name: str, workspace: Path, *, open_instance: Callable[[], object], due_before_s: float = 86_400 + 60
) -> None:
    """Turn schedule ``name`` on BEFORE the daemon starts, with its last cron tick already due.

    ``dagster schedule start NAME -w WORKSPACE`` (the documented way, deploy/README.md and the
    schedule's docstring) stores the RUNNING state; its ``start_timestamp`` (the time from
    which the scheduler counts ticks) is then moved ``due_before_s`` back through the
    instance (``DagsterInstance.all_instigator_state`` / ``update_instigator_state``). The
    schedule keeps its real cron (the nightly 02:00): the tick in that past day is due, so
    the daemon's first scheduler iteration, right after it starts, fires it (one tick: a
    schedule without a partition set never catches up more) — no waiting for a cron minute.
    ``open_instance`` opens the same instance as the servers (the Postgres one needs the
    DAGSTER_PG_* variables)."""
    r = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "schedule", "start", name, "-w", str(workspace)],
        env=env,
        cwd=workspace.parent,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, f"dagster schedule start failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    with open_instance() as instance:
        [state] = [s for s in instance.all_instigator_state() if s.instigator_name == name]
        assert state.is_running, state
        data = state.instigator_data
        instance.update_instigator_state(state.with_data(data._replace(start_timestamp=time.time() - due_before_s)))
