"""The local inventory the bucket is compared with: the stem assets' latest records and the
messages' manifests of every known partition (Dagster reads; the entries are core's)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import dagster as dg

from hybrid_audio_dagster.core.delivery.consistency import ReportItem
from hybrid_audio_dagster.core.delivery.inventory import partition_entries, stem_entries
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, read_manifest
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import Template, load_templates
from hybrid_audio_dagster.defs.partitions import developers_partitions, message_partition_key, names_partitions, templates_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.stems.checks import current_keys
from hybrid_audio_dagster.defs.stems.lookup import STEM_ASSETS, CampaignStems


def segment_categories(template: Template) -> dict[str, str]:
    """Segment id → the stem category (stem asset name) it belongs to."""
    return {seg.id: STEM_ASSETS[seg.kind] for seg in template.segments}


@dataclass
class LocalInventory:
    """Every file the local side has or should have, and who makes each one.

    Attributes:
        entries: stems (WAV + sidecar) of every stem partition's latest record and of every
            manifest's timelines; messages and manifests of every template × developer.
        owners: object-relative key ``(category, relative_path)`` → ``(asset, partition)``
            whose materialization makes it.
    """

    paths: ProjectPaths
    entries: list[InventoryEntry] = field(default_factory=list)
    owners: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    templates: set[str] = field(default_factory=set)
    developers: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    def add(self, entries: Iterable[InventoryEntry], owner: tuple[str, str] | None = None) -> None:
        for e in entries:
            self.entries.append(e)
            if owner is not None:
                held = self.owners.setdefault((e.category, e.relative_path), [])
                if owner not in held:
                    held.append(owner)

    def locate(self, category: str, relative_path: str) -> Path | None:
        """Where a remote-only object the inventory does not list belongs, if it is a
        message or manifest of a known partition (other objects are left alone)."""
        parts = PurePosixPath(relative_path).parts
        if category not in ("messages", "manifests") or len(parts) != 3:
            return None
        tid, dev, file = parts
        if tid not in self.templates or dev not in self.developers:
            return None
        if category == "manifests" and file != MANIFEST_NAME:
            return None
        if category == "messages" and not (file.endswith(".wav") and file[:-4] in self.names):
            return None
        return self.paths.output / relative_path


def local_inventory(instance: dg.DagsterInstance, paths: ProjectPaths, tts) -> LocalInventory:
    """The :class:`LocalInventory` of every known partition (no GCS call, no TTS call)."""
    inv = LocalInventory(paths)
    inv.templates = set(instance.get_dynamic_partitions(templates_partitions.name))
    inv.developers = set(instance.get_dynamic_partitions(developers_partitions.name))
    inv.names = set(instance.get_dynamic_partitions(names_partitions.name))
    campaign = CampaignStems(instance, paths, tts)
    for kind in SegmentKind:
        campaign.load(kind, current_keys(instance, kind))
        for partition, records in campaign.records[kind].items():
            inv.add(stem_entries({STEM_ASSETS[kind]: records}, paths.stems), (STEM_ASSETS[kind], partition))
    templates = load_templates(paths.templates)
    for tid in instance.get_dynamic_partitions(templates_partitions.name):
        for dev in instance.get_dynamic_partitions(developers_partitions.name):
            key = str(message_partition_key(tid, dev))
            folder = paths.output / tid / dev
            rows = read_manifest(folder / MANIFEST_NAME)
            tpl = templates.get(tid)
            msgs, stems = partition_entries(
                rows, output_root=paths.output, stems_root=paths.stems, segment_categories=segment_categories(tpl) if tpl else {}
            )
            inv.add(msgs, ("messages", key))
            inv.add([InventoryEntry("manifests", f"{tid}/{dev}/{MANIFEST_NAME}", folder / MANIFEST_NAME)], ("messages", key))
            inv.add(stems)
    return inv


def to_regenerate(items: Iterable[ReportItem], inventory: LocalInventory) -> dict[str, list[str]]:
    """Asset → partitions to materialize for objects that are on neither side."""
    out: dict[str, list[str]] = {}
    for item in items:
        for asset, partition in inventory.owners.get((item.category, item.relative_path or ""), []):
            parts = out.setdefault(asset, [])
            if partition not in parts:
                parts.append(partition)
    return out
