"""The bucket as a shared stem cache: a remote fetcher for :class:`~..stems.index.StemIndex`.

:class:`RemoteStemFetcher` is called with ``(signature, engine)`` when the local store has no
intact stem for that signature. It lists the signature's folder in the bucket
(``<prefix>/stems/<engine>/<sig[:2]>/<sig>/``), and for each ``.json`` sidecar there:

1. downloads the sidecar under a temp name in the local signature folder and checks it:
   its record names this signature, its identity hashes to this signature, and its record
   path is the one the store's layout gives (so the bucket cannot place a file elsewhere);
2. downloads the WAV to the record's path, verified against the record's sha256 (and the
   object's md5/crc32c), atomically;
3. renames the sidecar into place.

Then the local store's own :meth:`StemStore.find` (identity and sha256 checked again)
answers. Nothing is removed: a sidecar that fails a check is dropped before it is placed.
A GCS failure (bucket missing, permission, outage past the retries) is raised, naming the
bucket: a configured but unreachable cache never silently turns into TTS spending.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybrid_audio_dagster.core.delivery.errors import ChecksumMismatch, ObjectNotFound
from hybrid_audio_dagster.core.stems.identity import signature_of_identity
from hybrid_audio_dagster.core.stems.store import StemRecord, StemStore, engine_dirname

__all__ = ["RemoteStemFetcher"]


class RemoteStemFetcher:
    """``fetch(signature, engine) -> StemRecord | None`` over a :class:`~.mirror.GCSMirror`.

    Args:
        mirror: a ``GCSMirror``, or a callable returning one (built on first use, so a run
            whose stems are all local never creates a GCS client).
        store: the local :class:`StemStore` the stems land in.

    Attributes:
        fetched: records downloaded by this fetcher; ``rejected``: sidecars that failed a check.
    """

    def __init__(self, mirror: Any | Callable[[], Any], store: StemStore) -> None:
        self._mirror = mirror
        self.store = store
        self.fetched: list[StemRecord] = []
        self.rejected: list[str] = []

    @property
    def mirror(self) -> Any:
        if callable(self._mirror) and not hasattr(self._mirror, "download"):
            self._mirror = self._mirror()
        return self._mirror

    def __call__(self, signature: str, engine: str) -> StemRecord | None:
        mirror = self.mirror
        if mirror is None:
            return None
        folder = self.store.signature_dir(engine, signature)  # validates the signature
        rel_folder = f"{engine_dirname(engine)}/{signature[:2]}/{signature}"
        listing = mirror.list(mirror.layout.stem_object(rel_folder) + "/")
        names = {o.name for o in listing}
        for obj in sorted((o for o in listing if o.name.endswith(".json")), key=lambda o: o.name):
            self._fetch_one(mirror, obj.name, names, folder, signature)
        found = self.store.find(signature, engine)
        if found is not None and found not in self.fetched:
            self.fetched.append(found)
        return found

    def _fetch_one(self, mirror: Any, sidecar_object: str, names: set[str], folder: Path, signature: str) -> None:
        final = folder / sidecar_object.rsplit("/", 1)[-1]
        staging = folder / f".{final.name}.fetch-{os.getpid()}"
        try:
            try:
                mirror.download(sidecar_object, staging)
            except (ObjectNotFound, ChecksumMismatch) as exc:
                self.rejected.append(f"{sidecar_object}: {exc}")
                return
            record = self._check_sidecar(staging, signature)
            if record is None:
                self.rejected.append(f"{sidecar_object}: identity or path does not match signature {signature[:12]}")
                return
            wav_object = mirror.layout.stem_object(record.path)
            if wav_object not in names:
                self.rejected.append(f"{sidecar_object}: its WAV is not in the bucket")
                return
            wav = self.store.root / record.path
            if not self.store.verify(record):
                try:
                    mirror.download(wav_object, wav, expected_sha256=record.sha256)
                except (ObjectNotFound, ChecksumMismatch) as exc:
                    self.rejected.append(f"{wav_object}: {exc}")
                    return
            os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)

    def _check_sidecar(self, path: Path, signature: str) -> StemRecord | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = StemRecord.from_dict(data["record"])
            identity = data["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if record.signature != signature or signature_of_identity(identity) != signature:
            return None
        if record.path != self.store.relpath(record.engine, signature, record.sha256):
            return None
        if (self.store.root / record.path).with_suffix(".json").name != path.name.split(".fetch-")[0].lstrip("."):
            return None
        return record
