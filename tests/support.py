"""Helpers shared by the tests that build a throwaway project folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hybrid_audio_dagster.resources.paths import PROJECT_ROOT, ProjectPaths
from hybrid_audio_dagster.resources.tts import OfflineTTSResource


def write_csv(path: Path, header: str, values: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(f'"{v}"' for v in values) + "\n", encoding="utf-8")


def make_project(root: Path, names: list[str], developers: list[str]) -> ProjectPaths:
    """A project folder with seed datasets and the shipped templates."""
    write_csv(root / "data" / "names.csv", "name", names)
    write_csv(root / "data" / "developers.csv", "developer", developers)
    shutil.copytree(PROJECT_ROOT / "templates", root / "templates")
    return ProjectPaths(root=str(root))


class NoCallTTS(OfflineTTSResource):
    """The offline engine's contract, but any synthesis fails the test (warm-cache checks)."""

    def synthesize(self, text, voice):
        raise AssertionError(f"unexpected TTS call for {text!r}")


def pack(samples: np.ndarray, fmt: str) -> bytes:
    """Interleaved little-endian frame bytes of ``samples`` (frames, channels), written
    independently of the code under test."""
    if fmt == "pcm_s16le":
        return np.ascontiguousarray(samples, dtype="<i2").tobytes()
    if fmt == "pcm_s32le":
        return np.ascontiguousarray(samples, dtype="<i4").tobytes()
    if fmt == "pcm_f32le":
        return np.ascontiguousarray(samples, dtype="<f4").tobytes()
    v = np.ascontiguousarray(samples, dtype="<i4").reshape(-1)
    return v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def project_env(root: Path, names: list[str], developers: list[str]):
    """(root, paths, resources with the offline engine, an ephemeral instance)."""
    import dagster as dg

    paths = make_project(root, names, developers)
    return root, paths, {"paths": paths, "tts": OfflineTTSResource()}, dg.DagsterInstance.ephemeral()
