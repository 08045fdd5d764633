"""A real `dagster dev` on a free loopback port: the code location loads, and the CLI
drives it over HTTP (status, an on-demand message, refusals)."""

import json
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
from hybrid_audio_dagster.cli import main as cli
from hybrid_audio_dagster.core.messages import manifest_path, read_manifest
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


def test_cli_status_over_http(server, capsys):
    url, _, _, _ = server
    assert cli(["remote", "--url", url, "status"]) == 0
    out = capsys.readouterr().out
    assert "hybrid_audio: LOADED" in out and "templates: 2, developers: 2" in out


def test_cli_generates_one_message_through_the_webserver(server, capsys):
    url, _, paths, _ = server
    rows = {r["name"]: r for r in read_manifest(manifest_path(paths.output, "followup-en", "wyndham"))}
    target = paths.output / rows["John"]["path"]
    target.unlink()  # the run must rebuild exactly this one
    others = {n: (paths.output / r["path"]).stat().st_mtime_ns for n, r in rows.items() if n != "John"}

    code = cli(["remote", "--url", url, "generate", "--template", "followup-en", "--developer", "wyndham",
                "--name", rows["John"]["name_key"], "--wait", "--timeout", "240"])
    assert code == 0, capsys.readouterr()
    assert "SUCCESS" in capsys.readouterr().out
    assert target.exists()
    assert {n: (paths.output / r["path"]).stat().st_mtime_ns for n, r in rows.items() if n != "John"} == others


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--template", "followup-en", "--developer", "nope", "--name", "john"], "unknown developer 'nope'"),
        (["--template", "nope", "--developer", "wyndham", "--name", "john"], "unknown template 'nope'"),
        (["--template", "followup-en", "--developer", "wyndham", "--name", "../../etc"], "unknown name slug"),
    ],
)
def test_cli_refuses_unknown_partitions_before_submitting(server, capsys, args, problem):
    url, _, _, _ = server
    assert cli(["remote", "--url", url, "generate", *args]) == 2
    assert problem in capsys.readouterr().err


def test_cli_reports_an_unreachable_webserver(capsys):
    assert cli(["remote", "--url", f"http://127.0.0.1:{free_port()}", "status"]) == 2
    assert "cannot reach the Dagster webserver" in capsys.readouterr().err


def test_cli_rotation_next_pair_runs_through_the_webserver(server, capsys, monkeypatch):
    url, _, paths, home = server
    monkeypatch.setenv("HYBRID_AUDIO_ROOT", str(paths.base))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert cli(["rotation", "preview", "-n", "1"]) == 0
    previewed = json.loads(capsys.readouterr().out.splitlines()[0])

    code = cli(["rotation", "next", "--submit", "--wait", "--timeout", "240", "--url", url])
    out = capsys.readouterr().out
    assert code == 0, out
    pair = json.loads(out.splitlines()[0])
    assert (pair["name"], pair["developer"], pair["template"]) == (previewed["name"], previewed["developer"], previewed["template"])
    assert "SUCCESS" in out
    rows = read_manifest(manifest_path(paths.output, pair["template"], pair["developer"]))
    assert pair["name"] in {r["name_key"] for r in rows}


def test_cli_backfill_is_registered_by_the_webserver(server, capsys):
    url, _, _, _ = server
    assert cli(["remote", "--url", url, "backfill", "--asset", "messages"]) == 0
    backfill_id = capsys.readouterr().out.split()[1]
    query = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id numPartitions } } } }"
    results = httpx.post(f"{url}/graphql", json={"query": query}, timeout=10).json()["data"]["partitionBackfillsOrError"]["results"]
    [ours] = [b for b in results if b["id"] == backfill_id]
    assert ours["numPartitions"] == 2 * 2  # templates × developers
    assert cli(["remote", "--url", url, "backfill", "--asset", "no_such_asset"]) == 2
    assert "no asset named 'no_such_asset'" in capsys.readouterr().err
