"""The suppression list: people who opted out, kept out of every campaign.

Its sources are the seed file ``data/suppression.csv`` (column ``name``) and every upload
stored in ``data/store/suppression/`` (the inbox's ``suppression*`` files and ``datasets
upload --role suppression``). Values follow the names' rules and folding, so a listed "Zoe"
suppresses the names' "Zoë" and "ZOË". Removing a row (or deleting the upload) lets the
person back in.

A person is known by :func:`person_hash` (sha256 of the folded name): the audit log, the
metadata and the state file hold that, never the name. :func:`apply_suppression` takes them
out of a names dataset, as refused rows with reason ``suppressed``.

The state file ``data/normalized/suppression.json`` (written by the ``suppression`` asset
only) holds the hashes as last recorded, their fingerprint, when the list last changed and a
log of the changes, each with what its retirement removed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hybrid_audio_dagster.core.datasets.constants import SUPPRESSION
from hybrid_audio_dagster.core.datasets.items import DatasetItem, DatasetResult, Reject
from hybrid_audio_dagster.core.datasets.slugs import fold
from hybrid_audio_dagster.core.fsutil import atomic_write_text
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.parse import REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS, parse_file
from hybrid_audio_dagster.core.layout import ProjectDirs

SEED_FILE = "suppression.csv"  # in data/
STATE_FILE = "suppression.json"  # in data/normalized/
MAX_CHANGES = 500  # changes kept in the state file's log
SUPPRESSED = "suppressed"  # the reason of a names row kept out
EMPTY_LIST = frozenset({"empty_file", "no_data"})  # an emptied list is a list of nobody, not an error


class SuppressionListError(ValueError):
    """A suppression source cannot be read: nothing may be built until it is fixed."""


def person_hash(display: str) -> str:
    """The person's identity in logs and metadata: sha256 of their folded name."""
    return hashlib.sha256(f"person:{fold(display)}".encode("utf-8", "surrogatepass")).hexdigest()


def upload_files(paths: ProjectDirs, kind: str) -> list[Path]:
    """The accepted uploads of ``kind`` in ``data/store/<kind>/``, in acceptance order (by name)."""
    store = paths.dataset_store / kind
    if not store.is_dir():
        return []
    return sorted(p for p in store.iterdir() if p.is_file() and not p.is_symlink() and not p.name.startswith("."))


def suppression_sources(paths: ProjectDirs) -> list[Path]:
    """The seed file first (when present), then the stored uploads."""
    seed = paths.data / SEED_FILE
    return ([seed] if seed.is_file() else []) + upload_files(paths, SUPPRESSION)


@dataclass(frozen=True)
class SuppressionList:
    """Who is suppressed: hash → display (their name as first listed), and the refused rows."""

    people: dict[str, str] = field(default_factory=dict)
    rejects: tuple[Reject, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def hashes(self) -> frozenset[str]:
        return frozenset(self.people)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.people)).encode()).hexdigest()

    def covers(self, display: str) -> bool:
        return person_hash(display) in self.people


def read_suppression(paths: ProjectDirs) -> SuppressionList:
    """The list as its sources hold it now. Raises :class:`SuppressionListError` when a source
    cannot be parsed (a broken opt-out list must stop the build, never be read as empty)."""
    people: dict[str, str] = {}
    rejects: list[Reject] = []
    sources = suppression_sources(paths)
    for src in sources:
        try:
            parsed = parse_file(
                src.read_bytes(), filename=src.name, role=SUPPRESSION, max_bytes=REFERENCE_MAX_BYTES, max_rows=REFERENCE_MAX_ROWS
            )
        except InboxFileError as exc:
            if exc.code in EMPTY_LIST:
                continue
            raise SuppressionListError(f"the suppression list {src.name} is unreadable ({exc.code}): {exc.message}") from None
        except OSError as exc:
            raise SuppressionListError(f"the suppression list {src.name} is unreadable: {exc.strerror or exc}") from None
        result = parsed.normalize()
        for item in result.items:
            people.setdefault(person_hash(item.display), item.display)
        rejects += [r for r in result.rejects if r.reason != "duplicate"]
    return SuppressionList(people, tuple(rejects), tuple(p.name for p in sources))


def apply_suppression(result: DatasetResult, suppressed: SuppressionList) -> tuple[DatasetResult, list[DatasetItem]]:
    """``result`` without the suppressed people (their rows become rejects with reason
    ``suppressed``, showing a hash, never the name); and the items taken out."""
    if not suppressed.people:
        return result, []
    kept: list[DatasetItem] = []
    out: list[DatasetItem] = []
    for item in result.items:
        (out if suppressed.covers(item.display) else kept).append(item)
    if not out:
        return result, []
    refused = [
        Reject(
            i.row,
            f"#{person_hash(i.display)[:12]}",
            SUPPRESSED,
            "on the suppression list: kept out of every message and rotation; take them off the list to let them back in",
        )
        for i in out
    ]
    rejects = tuple(sorted((*result.rejects, *refused), key=lambda r: r.row))
    return DatasetResult(kind=result.kind, source=result.source, items=tuple(kept), rejects=rejects), out


# ------------------------------------------------------------------------------ state file


def state_path(paths: ProjectDirs) -> Path:
    return paths.datasets / STATE_FILE


def read_state(paths: ProjectDirs) -> dict:
    """The recorded state (an empty one before the first record, or if it is unreadable)."""
    try:
        data = json.loads(state_path(paths).read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("hashes"), list):
            return data
    except (OSError, ValueError):
        pass
    return {"fingerprint": None, "hashes": [], "changed_at": None, "changes": []}


def record_change(state: dict, current: SuppressionList, now: datetime | None = None) -> dict | None:
    """Fold ``current`` into ``state`` (in place): a new entry in the log when the list
    changed since it was recorded (returned), else None."""
    if state.get("fingerprint") == current.fingerprint:
        return None
    if state.get("fingerprint") is None and not current.people:  # the first record of an empty list: no change
        state.update(fingerprint=current.fingerprint, hashes=[])
        return None
    before = set(state.get("hashes") or ())
    after = set(current.people)
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    change = {
        "at": at,
        "fingerprint": current.fingerprint,
        "count": len(after),
        "added": sorted(h[:16] for h in after - before),
        "removed": sorted(h[:16] for h in before - after),
        "messages_retired": 0,
        "manifest_rows_retired": 0,
        "stems_removed": 0,
    }
    state.update(fingerprint=current.fingerprint, hashes=sorted(after), changed_at=at)
    state["changes"] = [*state.get("changes", []), change][-MAX_CHANGES:]
    return change


def add_retired(state: dict, *, messages: int, rows: int, stems: int) -> None:
    """Count a retirement against the latest change (the one whose list it applied)."""
    if not state.get("changes"):
        return
    last = state["changes"][-1]
    last["messages_retired"] += messages
    last["manifest_rows_retired"] += rows
    last["stems_removed"] += stems


def write_state(paths: ProjectDirs, state: dict) -> None:
    atomic_write_text(state_path(paths), json.dumps(state, indent=1, sort_keys=True))
