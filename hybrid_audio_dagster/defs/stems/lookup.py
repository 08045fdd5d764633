"""Stem lookup for every Dagster-side reader: stem assets, their checks, messages, the
batch planner, the inbox path and the rotation's readiness check.

A stem is found by its signature (what the template and the TTS resource would produce
now), never by (partition, slot): the stem assets' latest materialization metadata is the
index, read in bulk, and any partition's record with the signature is a hit; the store's
own sidecars answer for what no record knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from hybrid_audio_dagster.core.delivery.stem_cache import RemoteStemFetcher
from hybrid_audio_dagster.core.pronounce.lexicon import says_in_text
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.stems.identity import stem_signature
from hybrid_audio_dagster.core.stems.index import ContractCache, Freshness, MissingStemError, Slot, StemIndex, assess, render_slots
from hybrid_audio_dagster.core.stems.store import StemRecord, StemStore
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import Template, load_templates
from hybrid_audio_dagster.defs.metadata_index import latest_metadata
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

STEM_ASSETS = {SegmentKind.NAME: "name_stems", SegmentKind.DEVELOPER: "developer_stems", SegmentKind.SCRIPT: "script_stems"}
STEMS_META = "stems"  # signature → stored stem record
SLOTS_META = "slots"  # slot ("<template>/<segment>") → signature


def describe_missing(errors: Iterable[MissingStemError], limit: int = 20) -> str:
    """One line per stem asset naming the partitions to materialize, then a few examples."""
    by_asset: dict[str, list[str]] = {}
    examples: list[str] = []
    for e in errors:
        parts = by_asset.setdefault(e.asset, [])
        if e.partition not in parts:
            parts.append(e.partition)
        if len(examples) < 5:
            examples.append(str(e))
    lines = [
        f"materialize {asset} partition(s) {', '.join(repr(p) for p in parts[:limit])}"
        + (f" and {len(parts) - limit} more" if len(parts) > limit else "")
        for asset, parts in by_asset.items()
    ]
    return "\n".join(lines + [f"  e.g. {x}" for x in examples])


class CampaignStems:
    """The stem index of one run: records of the partitions it loaded, then the store."""

    def __init__(
        self, instance: dg.DagsterInstance, paths: ProjectPaths, tts, templates: Mapping[str, Template] | None = None, gcs=None
    ) -> None:
        self.instance = instance
        self.store = StemStore(paths.stems)
        # the bucket as a cache tier when GCS is on: stems missing here are downloaded, not synthesized
        self.remote = RemoteStemFetcher(gcs.get_mirror, self.store) if gcs is not None and gcs.enabled else None
        self.index = StemIndex(self.store, fetch=self.remote)
        self.contract_for = ContractCache(tts.contract, getattr(tts, "pronunciation_contract", None))
        self.paths = paths
        self._says: dict[SegmentKind, dict[str, tuple[Say, ...]]] = {}
        self.templates = dict(templates) if templates is not None else load_templates(paths.templates)
        self.recorded: dict[SegmentKind, dict[str, set[str]]] = {k: {} for k in SegmentKind}
        self._slot_sigs: dict[SegmentKind, dict[str, dict[str, str]]] = {k: {} for k in SegmentKind}
        self.records: dict[SegmentKind, dict[str, list[StemRecord]]] = {k: {} for k in SegmentKind}
        # found stems by (kind, owner, template, segment, text, deep): a messages run resolves a
        # name's stems once per developer partition and again after its preflight; the store is
        # write-once, so a stem found once stays valid for this object's short life (misses are
        # never kept)
        self._resolved: dict[tuple, StemRecord] = {}

    def load(self, kind: SegmentKind, partitions: Iterable[str]) -> CampaignStems:
        """Read the latest records of ``partitions`` of the kind's stem asset (bulk)."""
        todo = [p for p in dict.fromkeys(partitions) if p not in self.recorded[kind]]
        for partition, md in latest_metadata(self.instance, dg.AssetKey(STEM_ASSETS[kind]), todo).items():
            records: list[StemRecord] = []
            for raw in (md.get(STEMS_META) or {}).values():
                try:
                    record = StemRecord.from_dict(raw)
                except (KeyError, TypeError):
                    continue  # a record of an older format: the store still knows the stem
                self.index.add(record)
                records.append(record)
            self.records[kind][partition] = records
            self.recorded[kind][partition] = {r.signature for r in records}
            self._slot_sigs[kind][partition] = dict(md.get(SLOTS_META) or {})
        return self

    def says(self, kind: SegmentKind) -> dict[str, tuple[Say, ...]]:
        """key → pronunciations of the kind's items, from the dataset snapshot (read once)."""
        if kind not in self._says:
            from hybrid_audio_dagster.core.datasets.snapshot import DATASET_OF, read_says

            self._says[kind] = {} if kind is SegmentKind.SCRIPT else read_says(self.paths, DATASET_OF[kind])
        return self._says[kind]

    def signature(self, template: Template, text: str, say: tuple[Say, ...] = ()) -> tuple[str, str]:
        """(signature, engine) of ``text`` spoken with ``template``'s voice (and ``say``)."""
        contract = self.contract_for(template.voice_settings(), bool(say))
        return stem_signature(text, contract, say), contract.engine

    def resolve(self, kind: SegmentKind, owner: str, template: Template, segment_id: str, text: str, *, deep: bool = False) -> StemRecord:
        """The stored stem for a rendered segment, or :class:`MissingStemError` naming the
        stem partition to materialize (never an older stem of another signature)."""
        memo = (kind, owner, template.id, segment_id, text, deep)
        found = self._resolved.get(memo)
        if found is not None:
            return found
        says = self.says(kind).get(owner, ())
        sig, engine = self.signature(template, text, says_in_text(text, says) if says else ())
        record = self.index.lookup(sig, engine, deep=deep)
        if record is None:
            slot = f"{template.id}/{segment_id}"
            had = self._slot_sigs[kind].get(owner, {}).get(slot)
            reason = "missing" if had is None else "stale (text, pronunciation, voice or engine changed since it was made)"
            raise MissingStemError(STEM_ASSETS[kind], owner, slot, reason)
        self._resolved[memo] = record
        return record

    def slots(self, kind: SegmentKind, keys: Iterable[str], displays: Mapping[str, str]) -> tuple[list[Slot], list[str]]:
        return render_slots(kind, keys, self.templates, displays, self.contract_for, self.says(kind))

    def freshness(self, kind: SegmentKind, keys: list[str], displays: Mapping[str, str], *, deep: bool = False) -> Freshness:
        """Which of ``keys`` need a stems run, and what that run would synthesize."""
        self.load(kind, keys)
        slots, _ = self.slots(kind, keys, displays)
        return assess(keys, slots, self.recorded[kind], self.index, deep=deep)
