"""What the crash, overlap and disk-failure tests share: the campaign they run, a child
process with its log, a headless batch, a kill at a chosen moment, and the checks of what
the project folder holds after (temp files, spools, whole files, manifests that verify)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from hybrid_audio_dagster.core.audio.wav import load_wav
from hybrid_audio_dagster.defs.messages.checks import verify_partition
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from testkit.postgres import DEPLOY_ENV

ROOT = Path(__file__).resolve().parents[2]
SQLITE_YAML = ROOT / "deploy" / "dagster.yaml"
NO_POOLS_YAML = "telemetry:\n  enabled: false\n"
NAMES = [f"Name{chr(65 + i % 26)}{chr(97 + i // 26)}x" for i in range(40)]
DEVELOPERS = ["Wyndham", "Hilton Grand Vacations", "Marriott"]
KILL_WAIT_S = 150  # every wait is bounded
BATCH_S = 150


# -- helpers ----------------------------------------------------------------------------------
def clean_env(home: Path, project: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAGSTER_", "CARTESIA_", "HYBRID_AUDIO_", "TTS_", "GOOGLE_", "STORAGE_EMULATOR"))
    }
    env.update(DAGSTER_HOME=str(home), HYBRID_AUDIO_ROOT=str(project), TTS_ENGINE="offline", PYTHONUNBUFFERED="1")
    yaml_file = home / "dagster.yaml"
    if yaml_file.exists() and "postgres_db:" in yaml_file.read_text():
        env.update(DEPLOY_ENV)  # the production deployment's environment (deploy/README.md)
    return env


class Proc:
    """A child process in its own group, output to a file; always ended by the test."""

    def __init__(self, cmd: list[str], env: dict, log: Path):
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started = time.monotonic()

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)  # reaped: no zombie looks alive
        if not self._fh.closed:
            self._fh.close()

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.log.name} still running after {timeout:.0f}s (hung?):\n{self.output()[-3000:]}") from None
        self._fh.close()
        return rc


def headless_batch(home: Path, project: Path, log: Path, *args: str) -> Proc:
    return Proc([sys.executable, "-m", "hybrid_audio_dagster.runner.headless", "batch", *args], clean_env(home, project), log)


def kill_when(proc: Proc, ready, what: str, timeout_s: float = KILL_WAIT_S) -> float:
    """SIGKILL ``proc`` (its group) as soon as ``ready()`` is true; seconds since it started."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.proc.poll() is not None:
            raise AssertionError(f"the batch ended (rc {proc.proc.returncode}) before {what}:\n{proc.output()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    os.killpg(proc.proc.pid, signal.SIGKILL)
    elapsed = time.monotonic() - proc.started
    proc.kill()
    return elapsed


def sidecars(paths: ProjectPaths) -> list[str]:
    return glob.glob(str(paths.stems / "**" / "*.json"), recursive=True)


def spools(paths: ProjectPaths) -> list[str]:
    return glob.glob(str(paths.output / "**" / ".*.rows"), recursive=True)


def temp_files(paths: ProjectPaths) -> list[str]:
    found = []
    for root in (paths.stems, paths.output):
        for pattern in ("**/.*.tmp", "**/.*.rows"):
            found += glob.glob(str(root / pattern), recursive=True)
    return found


def message_mtimes(paths: ProjectPaths) -> dict[str, int]:
    return {
        str(Path(p).relative_to(paths.output)): os.stat(p).st_mtime_ns
        for p in glob.glob(str(paths.output / "**" / "*.wav"), recursive=True)
    }


def billed(paths: ProjectPaths) -> int:
    """TTS calls that reached the engine, from the audit log (hits are not billed)."""
    path = paths.logs / "audit.jsonl"
    if not path.exists():
        return 0
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(1 for e in lines if e["event"] == "tts_call" and not e["hit"] and e["ok"])


def verify_all(paths: ProjectPaths, names: list[str]) -> None:
    for tdir in sorted(p for p in paths.output.iterdir() if p.is_dir()):
        for ddir in sorted(p for p in tdir.iterdir() if p.is_dir()):
            checked, problems = verify_partition(paths, tdir.name, ddir.name)
            assert not problems, problems[:5]
            assert checked == len(names), (tdir.name, ddir.name, checked)


def assert_final_files_whole(paths: ProjectPaths) -> None:
    """Every WAV under a final name parses whole (no partial file is visible)."""
    for p in glob.glob(str(paths.stems / "**" / "*.wav"), recursive=True) + glob.glob(str(paths.output / "**" / "*.wav"), recursive=True):
        load_wav(Path(p).read_bytes(), p)


def runs_with(instance: dg.DagsterInstance, **tags) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags=tags)))


def open_instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))
