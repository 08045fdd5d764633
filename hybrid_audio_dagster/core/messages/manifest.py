"""Manifests: one parquet file per template × developer, one row per message.

Rows are spooled to disk as they are produced and converted at commit, one manifest at a
time, so memory stays flat however many partitions and messages a run covers.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..fsutil import safe_join

MANIFEST_NAME = "manifest.parquet"
MANIFEST_SCHEMA = pa.schema(
    [
        ("name_key", pa.string()),
        ("name", pa.string()),
        ("path", pa.string()),  # relative to the output root
        ("frames", pa.int64()),
        ("sample_rate", pa.int32()),
        ("duration_s", pa.float64()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("sha256", pa.string()),
        ("input_signature", pa.string()),
        ("template_signature", pa.string()),
        ("timeline", pa.string()),  # Timeline.to_json()
        ("gs_uri", pa.string()),  # the message's gs:// URI once delivered (null until then, or with GCS off)
    ]
)


@dataclass(frozen=True)
class ManifestRow:
    name_key: str
    name: str
    path: str
    frames: int
    sample_rate: int
    duration_s: float
    bytes: int
    mtime_ns: int
    sha256: str
    input_signature: str
    template_signature: str
    timeline: str
    gs_uri: str | None = None


def manifest_path(output_root: str | Path, template_id: str, developer_key: str) -> Path:
    return safe_join(output_root, template_id, developer_key, MANIFEST_NAME)


def read_manifest(path: str | Path, columns: list[str] | None = None) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return pq.read_table(path, columns=columns).to_pylist()


def file_matches(root: str | Path, row: Mapping) -> bool:
    """Cheap intactness test for skipping: the file exists with the recorded size and mtime.

    Full sha256 verification is the asset check's job; re-hashing every file on every run
    would make a no-op batch cost as much as writing it.
    """
    try:
        st = os.stat(os.path.join(root, row["path"]))
    except OSError:
        return False
    return st.st_size == row["bytes"] and st.st_mtime_ns == row["mtime_ns"]


class ManifestWriter:
    """Spools manifest rows to a temp file; on commit writes the parquet manifest and
    renames it over the old one.

    A run holds one writer per partition (dozens at once). An open ``ParquetWriter`` keeps
    ~1.4 MB of Arrow buffers, so rows are spooled as pickled chunks instead and each
    manifest is converted at commit, one at a time: memory stays flat however many
    partitions and messages a run covers.
    """

    def __init__(self, path: str | Path, *, flush_rows: int = 256) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.rows")
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._spool = open(self._spool_path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._buf: list[dict] = []
        self._flush_rows = flush_rows
        self.rows = 0

    def add(self, row: Mapping) -> None:
        self._buf.append(dict(row))
        self.rows += 1
        if len(self._buf) >= self._flush_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            pickle.dump(self._buf, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
            self._buf = []

    def commit(self) -> None:
        self._flush()
        self._spool.close()
        try:
            with pq.ParquetWriter(self._tmp, MANIFEST_SCHEMA) as writer, open(self._spool_path, "rb") as spool:
                if not self.rows:
                    writer.write_table(MANIFEST_SCHEMA.empty_table())
                while True:
                    try:
                        chunk = pickle.load(spool)  # our own spool file, written above
                    except EOFError:
                        break
                    writer.write_table(pa.Table.from_pylist(chunk, schema=MANIFEST_SCHEMA))
            os.replace(self._tmp, self.path)
        finally:
            self._spool_path.unlink(missing_ok=True)
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self._spool.close()
        self._spool_path.unlink(missing_ok=True)
        self._tmp.unlink(missing_ok=True)
