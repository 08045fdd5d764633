"""A real ``dagster dev`` for the system tests (``serve_dagster_dev``), and the CLI tests' one
per test module (module-scoped ``web``).

A temp ``DAGSTER_HOME`` and project, ``TTS_ENGINE=cartesia`` against the local FakeCartesia
(a fake key that must never show up in a log or metadata), the GCS emulator as the bucket.
The CLI runs in-process (``main([...])``) and speaks to the server only over HTTP. Each module
that asks for ``web`` gets its own server, so pytest-xdist can run two such modules at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import pytest

from hybrid_audio_dagster.cli import main as cli
from hybrid_audio_dagster.core import audit
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from testkit.cartesia_server import FakeCartesia
from testkit.gcs_emulator import GCSEmulator
from testkit.project import make_project
from testkit.servers import loaded_locations, start_dagster_dev, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk_car_FAKE_cli_audit_7f3a9c1e5b"
BUCKET = "hybrid-audio-cli"
NAMES = ["John", "Maria", "Zoë"]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations"]


@contextmanager
def serve_dagster_dev(
    tmp: Path, *, fake_key: str, bucket: str | None = None, extra_env: dict[str, str] | None = None, load_timeout_s: float = 120
) -> Iterator[dict]:
    """A real ``dagster dev`` over a fresh project under ``tmp`` (``NAMES`` × ``DEVELOPERS``):
    its own ``DAGSTER_HOME`` (the operator's instance config, runs dequeued every second),
    Cartesia from a loopback FakeCartesia with ``fake_key``, and the GCS emulator as the bucket
    when ``bucket`` is given (else no bucket). Yields url, paths, home, fake, tmp, locations and
    ``alive`` (asserts the server still runs)."""
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())  # runs dequeued every second
    paths = make_project(root, NAMES, DEVELOPERS)
    with ExitStack() as stack:
        fake = FakeCartesia(fake_key).start()
        stack.callback(fake.stop)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "HYBRID_AUDIO_ROOT": str(root),
            "PYTHONPATH": str(ROOT),
            "TTS_ENGINE": "cartesia",
            "CARTESIA_BASE_URL": fake.base_url,
            "CARTESIA_API_KEY": fake_key,
            **(extra_env or {}),
        }
        env.pop("HYBRID_AUDIO_GCS_BUCKET", None)
        if bucket:
            gcs = GCSEmulator(tmp / "gcs", default_bucket=bucket)
            gcs.start()
            stack.callback(gcs.stop)
            env |= {"HYBRID_AUDIO_GCS_BUCKET": bucket, "STORAGE_EMULATOR_HOST": gcs.url}
        server, url = start_dagster_dev(env, ROOT / "workspace.yaml", tmp)
        stack.callback(server.stop)

        def alive() -> None:
            assert server.alive(), f"dagster dev exited:\n{server.log_tail()}"

        entries = wait_until(lambda: loaded_locations(url), timeout_s=load_timeout_s, what="the code location to load", alive=alive)
        yield {"url": url, "paths": paths, "home": home, "fake": fake, "tmp": tmp, "locations": entries, "alive": alive}


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Iterator[dict]:
    with serve_dagster_dev(tmp_path_factory.mktemp("cli_web"), fake_key=FAKE_KEY, bucket=BUCKET) as served:
        yield served


def run(web: dict, capsys, *args: str) -> tuple[int, dict | str]:
    """``hybrid-audio --url URL --json ARGS``: (exit code, parsed JSON or stderr)."""
    code = cli(["--url", web["url"], "--json", *args])
    captured = capsys.readouterr()
    try:
        return code, json.loads(captured.out)
    except ValueError:
        return code, captured.out + captured.err


def measured(capsys, line: str) -> None:
    """A number the README quotes, shown with ``-s`` (outside the captured CLI output)."""
    with capsys.disabled():
        print(f"\n[measured] {line}")


def chars_billed(fake: FakeCartesia, since: int = 0) -> int:
    return sum(len(r.json["transcript"]) for r in fake.tts_requests[since:] if r.status == 200)


def _strings_in_sqlite(path: Path) -> Iterator[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in con.execute("select name from sqlite_master where type='table'"):
            for row in con.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        try:
                            value = zlib.decompress(value)
                        except zlib.error:
                            pass
                        yield value.decode("utf-8", "replace")
                    elif isinstance(value, str):
                        yield value
    finally:
        con.close()


def assert_audit_log_whole_and_no_key(web: dict, kinds: set[str]) -> None:
    """The audit log is JSON lines holding at least ``kinds`` of events, its TTS calls add up to
    what the fake server billed, and the key is in no file, database value or run log."""
    paths: ProjectPaths = web["paths"]
    events = list(audit.read(paths.logs))  # raises on a line that is not JSON
    assert kinds <= {e["event"] for e in events}, {e["event"] for e in events}
    calls = [e for e in events if e["event"] == "tts_call"]
    assert all(e["engine"] == "cartesia" and e["run_id"] and e["trigger"] == "cli" and e["latency_ms"] >= 0 for e in calls)
    assert sum(e["chars"] for e in calls if not e["hit"]) == chars_billed(web["fake"])
    for folder in (paths.base, web["home"]):
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert FAKE_KEY.encode() not in data, f
                if f.suffix == ".db":
                    assert not any(FAKE_KEY in s for s in _strings_in_sqlite(f)), f
    with dg.DagsterInstance.from_config(str(web["home"])) as instance:
        for record in instance.get_run_records():
            for entry in instance.all_logs(record.dagster_run.run_id):
                assert FAKE_KEY not in str(entry), record.dagster_run.run_id
    assert web["fake"].tts_requests and all(r.auth_ok for r in web["fake"].tts_requests)
