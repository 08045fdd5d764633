"""The consistency report: local inventory against the bucket, by category.

:func:`compare` is pure: it takes the local files with their checksums
(:func:`local_files` hashes them) and a remote listing (:meth:`GCSMirror.remote_inventory`)
and puts every object in one state:

============  =================================================================
in_sync       both sides, checksums equal (md5 and/or crc32c, whichever the bucket has)
local_only    the local file exists, the bucket has no object
remote_only   the bucket has it; locally it is missing (expected path absent) or unknown
mismatched    both sides, checksums differ (or the bucket reports no checksum at all)
missing       expected by the inventory, on neither side (regenerate it)
============  =================================================================

Rendered as a Markdown table (:meth:`ConsistencyReport.to_markdown`) and as JSON lines
(:func:`write_jsonl`, atomic).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hybrid_audio_dagster.core.delivery.layout import CATEGORIES, BucketLayout, Checksums, InventoryEntry, file_checksums, path_exists
from hybrid_audio_dagster.core.delivery.records import RemoteObject
from hybrid_audio_dagster.core.fsutil import atomic_write_text

__all__ = [
    "STATES",
    "ConsistencyReport",
    "LocalFile",
    "ReportItem",
    "build_report",
    "compare",
    "local_files",
    "write_jsonl",
]

STATES: tuple[str, ...] = ("in_sync", "local_only", "remote_only", "mismatched", "missing")
#: Category of remote stems that carry no ``category`` metadata (uploaded by something else).
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class LocalFile:
    """An inventory entry with its file's checksums (``None``: the file does not exist)."""

    entry: InventoryEntry
    checksums: Checksums | None


def local_files(entries: Iterable[InventoryEntry]) -> list[LocalFile]:
    """Hash every entry's local file (the only I/O of the report)."""
    return [LocalFile(e, file_checksums(e.local_path) if path_exists(e.local_path) else None) for e in entries]


@dataclass(frozen=True)
class ReportItem:
    """One object in one state. Checksum fields are ``None`` on the side that lacks it."""

    category: str
    state: str
    object_name: str
    relative_path: str | None
    local_path: str | None
    local_md5: str | None = None
    local_crc32c: str | None = None
    local_size: int | None = None
    remote_md5: str | None = None
    remote_crc32c: str | None = None
    remote_size: int | None = None
    remote_generation: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConsistencyReport:
    """Every compared object, by state; see the module docstring.

    Attributes:
        bucket, prefix: what was compared.
        items: one :class:`ReportItem` per object name, sorted by (category, object).
        enabled: ``False`` when GCS is off (then ``items`` is empty).
    """

    bucket: str
    prefix: str
    items: list[ReportItem] = field(default_factory=list)
    enabled: bool = True

    def by_state(self, state: str, category: str | None = None) -> list[ReportItem]:
        return [i for i in self.items if i.state == state and (category is None or i.category == category)]

    @property
    def categories(self) -> list[str]:
        extra = sorted({i.category for i in self.items} - set(CATEGORIES))
        return [*CATEGORIES, *extra]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{category: {state: n}}`` for every category (zeros included)."""
        out = {c: dict.fromkeys(STATES, 0) for c in self.categories}
        for item in self.items:
            out[item.category][item.state] += 1
        return out

    @property
    def is_clean(self) -> bool:
        """True when every object is in sync (nothing to upload, download or regenerate)."""
        return all(i.state == "in_sync" for i in self.items)

    def summary(self) -> dict[str, int]:
        """Totals per state over all categories."""
        totals = dict.fromkeys(STATES, 0)
        for item in self.items:
            totals[item.state] += 1
        return totals

    def to_markdown(self, *, list_limit: int = 20) -> str:
        """A table of counts per category and state, then the out-of-sync objects (up to
        ``list_limit`` per state and category)."""
        if not self.enabled:
            return "GCS is off (no bucket configured): nothing to compare."
        lines = [
            f"Bucket `gs://{self.bucket}/{self.prefix}`",
            "",
            "| category | " + " | ".join(STATES) + " | total |",
            "|---|" + "---:|" * (len(STATES) + 1),
        ]
        counts = self.counts()
        for category in self.categories:
            row = counts[category]
            lines.append(f"| {category} | " + " | ".join(str(row[s]) for s in STATES) + f" | {sum(row.values())} |")
        tot = self.summary()
        lines.append("| **all** | " + " | ".join(f"**{tot[s]}**" for s in STATES) + f" | **{sum(tot.values())}** |")
        for state in STATES[1:]:
            for category in self.categories:
                items = self.by_state(state, category)
                if not items:
                    continue
                lines += ["", f"**{state}** — {category} ({len(items)})", ""]
                lines += [f"- `{i.object_name}`" for i in items[:list_limit]]
                if len(items) > list_limit:
                    lines.append(f"- … and {len(items) - list_limit} more")
        return "\n".join(lines)

    def to_jsonl(self) -> str:
        """One JSON object per line: a ``summary`` record, then one ``item`` record each."""
        head = {
            "record": "summary",
            "bucket": self.bucket,
            "prefix": self.prefix,
            "enabled": self.enabled,
            "clean": self.is_clean,
            "totals": self.summary(),
            "counts": self.counts(),
        }
        rows = [json.dumps(head, sort_keys=True)]
        rows += [json.dumps({"record": "item", **i.as_dict()}, sort_keys=True) for i in self.items]
        return "\n".join(rows) + "\n"


def write_jsonl(report: ConsistencyReport, path: str | os.PathLike) -> Path:
    """Write :meth:`ConsistencyReport.to_jsonl` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, report.to_jsonl())
    return path


def compare(local: Iterable[LocalFile], remote: Iterable[RemoteObject], layout: BucketLayout, *, bucket: str = "") -> ConsistencyReport:
    """The :class:`ConsistencyReport` of ``local`` against ``remote`` (pure).

    Objects are matched by object name (``layout``). An inventory entry listed twice for one
    object counts once (the first one's category). A remote object outside the layout's
    ``stems/`` and ``output/`` roots is ignored; one with no inventory entry is remote-only
    in the category its ``category`` metadata names (or :data:`UNCLASSIFIED`).
    """
    remote_by_name = {o.name: o for o in remote if layout.split(o.name) is not None}
    seen: set[str] = set()
    items: list[ReportItem] = []
    for lf in local:
        name = layout.entry_object(lf.entry)
        if name in seen:
            continue
        seen.add(name)
        r = remote_by_name.get(name)
        c = lf.checksums
        if c is None:
            state = "missing" if r is None else "remote_only"
        elif r is None:
            state = "local_only"
        else:
            state = "in_sync" if c.matches(md5=r.md5, crc32c=r.crc32c, size=r.size) else "mismatched"
        items.append(
            ReportItem(
                category=lf.entry.category,
                state=state,
                object_name=name,
                relative_path=lf.entry.relative_path,
                local_path=str(lf.entry.local_path),
                local_md5=c.md5 if c else None,
                local_crc32c=c.crc32c if c else None,
                local_size=c.size if c else None,
                remote_md5=r.md5 if r else None,
                remote_crc32c=r.crc32c if r else None,
                remote_size=r.size if r else None,
                remote_generation=r.generation if r else None,
            )
        )
    for name, r in remote_by_name.items():
        if name in seen:
            continue
        split = layout.split(name)
        items.append(
            ReportItem(
                category=layout.guess_category(name, r.metadata) or UNCLASSIFIED,
                state="remote_only",
                object_name=name,
                relative_path=split[1] if split else None,
                local_path=None,
                remote_md5=r.md5,
                remote_crc32c=r.crc32c,
                remote_size=r.size,
                remote_generation=r.generation,
            )
        )
    order = {c: i for i, c in enumerate(CATEGORIES)}
    items.sort(key=lambda i: (order.get(i.category, len(order)), i.category, i.object_name))
    return ConsistencyReport(bucket=bucket, prefix=layout.prefix, items=items)


def build_report(mirror: Any, entries: Iterable[InventoryEntry]) -> ConsistencyReport:
    """List the bucket (one listing per root), hash the local files, :func:`compare`."""
    remote = mirror.remote_inventory()
    return compare(local_files(entries), remote, mirror.layout, bucket=mirror.bucket_name)
