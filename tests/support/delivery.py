"""What the GCS delivery tests share: the bucket, fast retries, checksums, a WAV writer and
validator, the emulator behind its fault proxy (fixture ``gcs``) and a local project tree."""

from __future__ import annotations

import base64
import hashlib
import random
import wave
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import pytest
from google.cloud import storage

from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.core.delivery.mirror import GCSMirror
from hybrid_audio_dagster.core.delivery.records import RetrySettings
from testkit.gcs_emulator import FaultProxy, GCSEmulator, emulator_behind_proxy

BUCKET = "ha-test"
FAST = RetrySettings(max_attempts=4, initial_wait_s=0.02, max_wait_s=0.1, budget_s=5.0, timeout_s=5.0)


# -- helpers ------------------------------------------------------------------------------


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def crc_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_wav(path: Path, seed: int, frames: int = 800) -> bytes:
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(b"".join(rnd.randrange(-3000, 3000).to_bytes(2, "little", signed=True) for _ in range(frames)))
    return path.read_bytes()


def is_wav(path: Path) -> bool:
    """The caller-supplied validator: a readable, non-empty WAV."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() > 0


def valid_file(path: Path) -> bool:
    return is_wav(path) if path.suffix == ".wav" else path.stat().st_size > 0


@dataclass
class Gcs:
    emulator: GCSEmulator
    proxy: FaultProxy

    def client(self) -> storage.Client:
        return storage.Client(project="test")

    def mirror(self, bucket: str = BUCKET, prefix: str = "hybrid-audio", retry: RetrySettings = FAST) -> GCSMirror:
        return GCSMirror(self.client(), bucket, prefix, retry=retry)

    def raw(self, object_name: str) -> bytes:
        return self.client().bucket(BUCKET).blob(object_name).download_as_bytes()

    def remote_state(self) -> dict[str, tuple[str, int]]:
        return {b.name: (b.md5_hash, b.generation) for b in self.client().list_blobs(BUCKET)}


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    with emulator_behind_proxy(tmp_path / "emulator", monkeypatch, BUCKET) as (emulator, proxy):
        yield Gcs(emulator, proxy)


def make_tree(root: Path) -> tuple[list[InventoryEntry], dict[str, bytes]]:
    """A local project: stems of three categories, messages and a manifest."""
    entries, content = [], {}
    specs = [("name_stems", f"offline/a{i}/sig-name-{i}.wav") for i in range(4)]
    specs += [("developer_stems", f"offline/d{i}/sig-dev-{i}.wav") for i in range(3)]
    specs += [("script_stems", f"offline/s{i}/sig-script-{i}.wav") for i in range(3)]
    specs += [("messages", f"followup-en/wyndham/name-{i}.wav") for i in range(4)]
    for seed, (category, rel) in enumerate(specs):
        local = root / ("stems" if category.endswith("stems") else "output") / rel
        content[rel] = write_wav(local, seed)
        entries.append(InventoryEntry(category, rel, local))
    manifest = root / "output" / "followup-en" / "wyndham" / "manifest.parquet"
    manifest.write_bytes(b"PAR1 fake manifest PAR1")
    content["followup-en/wyndham/manifest.parquet"] = manifest.read_bytes()
    entries.append(InventoryEntry("manifests", "followup-en/wyndham/manifest.parquet", manifest))
    return entries, content


def local_state(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}
