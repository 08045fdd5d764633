"""Manifests: one parquet file per template × developer, one row per message.

Rows are spooled to disk as they are produced and converted at commit, one manifest at a
time, so memory stays flat however many partitions and messages a run covers.

Progress is durable as it goes: the spool is written through to the OS every
``flush_s`` seconds (so a ``kill -9`` loses at most that much of the manifest) and fsync'd
every ``fsync_s`` seconds and at commit. A writer that dies leaves its spool
(``.manifest.parquet.<host>-<pid>-<n>.rows``); the next writer of that manifest, under the
partition's lock, takes its rows back (:func:`recover_spools`) for every message whose
file still has the recorded size and mtime, so those messages are not written again.
"""

from __future__ import annotations

import itertools
import os
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hybrid_audio_dagster.core.fsutil import error_naming, owner_tag, safe_join

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


FINGERPRINT_KEY = b"hybrid_audio.partition_fingerprint"
FIRST_GROUP_ROWS = 16  # the first row group: enough for a partition's preview, read alone
ROW_GROUP_ROWS = 4096  # rows per later row group (a row is ~2.7 KB with its timeline)


def manifest_path(output_root: str | Path, template_id: str, developer_key: str) -> Path:
    return safe_join(output_root, template_id, developer_key, MANIFEST_NAME)


def read_manifest(path: str | Path, columns: list[str] | None = None) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return pq.read_table(path, columns=columns).to_pylist()


def read_column(path: str | Path, column: str) -> list:
    """One column of a manifest as a list (``[]`` if there is no manifest): far cheaper than
    rows as dicts when a caller needs only, say, the name keys."""
    path = Path(path)
    if not path.exists():
        return []
    return pq.ParquetFile(path).read(columns=[column]).column(0).to_pylist()


def read_fingerprint(path: str | Path) -> tuple[str | None, int]:
    """The manifest's partition fingerprint (``None`` if it has none) and its row count,
    from the parquet footer alone (no row is read)."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return None, 0
    kv = meta.metadata or {}
    # the footer keeps the arrow schema serialized; our key sits beside it
    raw = kv.get(FINGERPRINT_KEY)
    return (raw.decode() if raw else None), meta.num_rows


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


_SEQ = itertools.count()


class ManifestWriter:
    """Spools manifest rows to a temp file; on commit writes the parquet manifest and
    renames it over the old one.

    A run holds one writer per partition (dozens at once). An open ``ParquetWriter`` keeps
    ~1.4 MB of Arrow buffers, so rows are spooled as pickled chunks instead and each
    manifest is converted at commit, one at a time: memory stays flat however many
    partitions and messages a run covers.

    Each chunk reaches the OS once ``flush_rows`` rows are buffered or ``flush_s`` seconds
    passed since the last flush, and the spool is fsync'd at most every ``fsync_s``
    seconds (the messages themselves are written without fsync: a power loss costs their
    rewrite either way, caught by size/mtime). The spool is ours alone (a sequence number
    per writer), so a later writer in the same process never truncates a spool that still
    holds rows to recover.
    """

    def __init__(self, path: str | Path, *, flush_rows: int = 256, flush_s: float = 0.25, fsync_s: float = 2.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tag = owner_tag()
        self._spool_path = self.path.with_name(f".{self.path.name}.{tag}-{next(_SEQ)}.rows")
        self._tmp = self.path.with_name(f".{self.path.name}.{tag}.tmp")
        try:
            self._spool = open(self._spool_path, "wb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            raise error_naming(exc, self._spool_path, "creating the manifest spool") from None
        self._buf: list[dict] = []
        self._flush_rows = flush_rows
        self._flush_s = flush_s
        self._fsync_s = fsync_s
        self._flushed_at = self._synced_at = time.monotonic()
        self.rows = 0

    @property
    def spool_path(self) -> Path:
        return self._spool_path

    def add(self, row: Mapping) -> None:
        self._buf.append(dict(row))
        self.rows += 1
        if len(self._buf) >= self._flush_rows or time.monotonic() - self._flushed_at >= self._flush_s:
            self._flush()

    def _flush(self, *, sync: bool = False) -> None:
        now = time.monotonic()
        self._flushed_at = now
        if self._buf:
            try:
                pickle.dump(self._buf, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
                self._spool.flush()  # to the OS: survives the death of this process
                if sync or now - self._synced_at >= self._fsync_s:
                    os.fsync(self._spool.fileno())
                    self._synced_at = now
            except OSError as exc:
                raise error_naming(exc, self._spool_path, "writing the manifest spool") from None
            self._buf = []

    def commit(self, *, fingerprint: str | None = None) -> None:
        """Write the manifest from the spool and rename it over the old one. On failure the
        old manifest is untouched and the spool stays for the next writer to recover.

        ``fingerprint`` (see :mod:`.fingerprint`) goes into the file's schema metadata, in the
        same rename as the rows: only a writer that knows every row is current passes one."""
        self._flush(sync=True)
        self._spool.close()
        schema = MANIFEST_SCHEMA.with_metadata({FINGERPRINT_KEY: fingerprint.encode()}) if fingerprint else MANIFEST_SCHEMA
        try:
            with pq.ParquetWriter(self._tmp, schema) as writer, open(self._spool_path, "rb") as spool:
                if not self.rows:
                    writer.write_table(MANIFEST_SCHEMA.empty_table())
                # spool chunks are as small as the flush interval made them; a row group per
                # chunk would leave thousands of them (a 9 MB footer every reader parses), so
                # rows are regrouped: a small first group (the preview reads only it), then
                # groups of ROW_GROUP_ROWS (bounded memory: ~11 MB of rows at most)
                pending: list[dict] = []
                target = FIRST_GROUP_ROWS
                while True:
                    try:
                        pending.extend(pickle.load(spool))  # our own spool file, written above
                    except EOFError:
                        break
                    while len(pending) >= target:
                        writer.write_table(pa.Table.from_pylist(pending[:target], schema=MANIFEST_SCHEMA))
                        del pending[:target]
                        target = ROW_GROUP_ROWS
                if pending:
                    writer.write_table(pa.Table.from_pylist(pending, schema=MANIFEST_SCHEMA))
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise error_naming(exc, self.path, "writing the manifest") from None
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._spool_path.unlink(missing_ok=True)

    def abort(self, *, keep_progress: bool = False) -> None:
        """Drop the spool, or with ``keep_progress`` leave what reached it for the next
        writer of this manifest to recover (a failed run keeps its finished messages)."""
        if keep_progress:
            try:
                self._flush(sync=True)
            except (OSError, ValueError):
                pass  # the disk that failed the run may fail this too: what is flushed stays
        self._spool.close()
        if not keep_progress:
            self._spool_path.unlink(missing_ok=True)
        self._tmp.unlink(missing_ok=True)


def read_spool(path: str | Path) -> list[dict]:
    """The rows of a spool, as far as its complete chunks go (a writer killed mid-chunk
    leaves a truncated last one, which is ignored)."""
    rows: list[dict] = []
    try:
        with open(path, "rb") as fh:
            while True:
                try:
                    chunk = pickle.load(fh)  # a spool of this project (see recover_spools)
                except EOFError:
                    break
                except Exception:  # noqa: BLE001 - truncated or damaged: keep the complete chunks
                    break
                if not isinstance(chunk, list):
                    break
                rows.extend(r for r in chunk if isinstance(r, dict))
    except OSError:
        pass
    return rows


def spool_paths(path: str | Path) -> list[Path]:
    """The spools left next to the manifest at ``path`` (any writer's)."""
    path = Path(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    prefix = f".{path.name}."
    return sorted(path.parent / n for n in names if n.startswith(prefix) and n.endswith(".rows"))


@dataclass
class Recovered:
    """What the spools of writers that died hold for one manifest."""

    rows: dict[str, dict] = field(default_factory=dict)  # name_key -> row whose file matches
    spools: list[Path] = field(default_factory=list)  # to remove once a manifest holds the rows
    stale_rows: int = 0  # rows whose file was replaced or removed since (not recovered)


def recover_spools(path: str | Path, output_root: str | Path) -> Recovered:
    """Rows of the spools next to manifest ``path`` whose message file still matches.

    Call it holding the partition's lock (``.manifest.lock``): then no live writer of this
    manifest exists, so every spool there belongs to a writer that died or failed. Only
    regular files owned by this user are read (they are unpickled). Later rows of a
    name win.
    """
    found = Recovered()
    uid = os.getuid()
    for spool in spool_paths(path):
        try:
            st = os.lstat(spool)
        except OSError:
            continue
        found.spools.append(spool)
        if not (os.path.isfile(spool) and not os.path.islink(spool) and st.st_uid == uid):
            continue
        for row in read_spool(spool):
            try:
                ok = file_matches(output_root, row)
            except (KeyError, TypeError, ValueError):
                ok = False
            if ok:
                found.rows[row["name_key"]] = row
            else:
                found.stale_rows += 1
    return found
