"""A real `dagster dev` on a free loopback port: the code location loads with warm stems and
messages (the ``hybrid-audio`` CLI over it: tests/test_cli_webserver.py)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

from hybrid_audio_dagster.batch import run_full_batch
from hybrid_audio_dagster.resources.paths import ProjectPaths
from hybrid_audio_dagster.resources.tts import OfflineTTSResource

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webserver")
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    (root / "data").mkdir(parents=True)
    (root / "data" / "names.csv").write_text("name\nJohn\nMaria\nZoë\n", encoding="utf-8")
    (root / "data" / "developers.csv").write_text("developer\nWyndham\nHilton Grand Vacations\n", encoding="utf-8")
    shutil.copytree(ROOT / "templates", root / "templates")
    paths = ProjectPaths(root=str(root))
    # warm stems and messages in the same sqlite home the webserver will read
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_full_batch(instance, {"paths": paths, "tts": OfflineTTSResource()})

    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HYBRID_AUDIO_ROOT": str(root)}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        entries = None
        while time.monotonic() < deadline:
            try:
                ws = httpx.post(f"{url}/graphql", json={"query": QUERY}, timeout=5).json()["data"]["workspaceOrError"]
                entries = ws.get("locationEntries") or []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            assert proc.poll() is None, "dagster dev exited early"
            time.sleep(1)
        yield url, entries, paths, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_dagster_dev_loads_the_code_location(server):
    _, entries, _, _ = server
    assert entries, "webserver never answered"
    (entry,) = entries
    assert entry["name"] == "hybrid_audio"
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
