"""Looking stems up by signature: the records an index holds first, then the store itself.

The Dagster layer feeds :class:`StemIndex` with the records it reads (in bulk) from the stem
assets' materialization metadata; any record with the right signature is a hit, whichever
partition recorded it. A signature no record knows is searched in the store, whose sidecars
survive a failed run, a wiped Dagster home or a storage migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hybrid_audio_dagster.core.pronounce.lexicon import says_in_text
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.stems.identity import stem_signature
from hybrid_audio_dagster.core.stems.store import StemRecord, StemStore
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import Template
from hybrid_audio_dagster.core.tts.base import StemContract, VoiceSettings


class MissingStemError(Exception):
    """A message needs a stem that is not stored with the current signature."""

    def __init__(self, asset: str, partition: str, slot: str, reason: str) -> None:
        self.asset, self.partition, self.slot, self.reason = asset, partition, slot, reason
        super().__init__(f"stem {slot} for {partition!r} is {reason}: materialize {asset} partition {partition!r}")


# fetch(signature, engine) -> a record now stored locally (downloaded and verified), or None
RemoteFetch = Callable[[str, str], "StemRecord | None"]


class StemIndex:
    """signature → newest verified record, from given records, then the store, then the
    optional remote ``fetch`` (e.g. the GCS bucket; see ``core/delivery/stem_cache.py``)."""

    def __init__(self, store: StemStore, records: Iterable[StemRecord] = (), *, fetch: RemoteFetch | None = None) -> None:
        self.store = store
        self.fetch = fetch  # the remote cache tier, asked when the store has nothing intact
        self._records: dict[str, StemRecord] = {}
        for record in records:
            self.add(record)

    def add(self, record: StemRecord) -> None:
        held = self._records.get(record.signature)
        if held is None or record.created_at > held.created_at:
            self._records[record.signature] = record

    def lookup(self, signature: str, engine: str, *, deep: bool = True) -> StemRecord | None:
        """The stem of ``signature`` if one is stored intact (``deep``: sha256 re-checked)."""
        record = self._records.get(signature)
        if record is not None and self.store.verify(record, deep=deep):
            return record
        found = self.store.find(signature, engine)
        if found is None and self.fetch is not None:
            found = self.fetch(signature, engine)
        if found is not None:
            self._records[signature] = found
        return found


class ContractCache:
    """One contract per voice: engines validate settings in ``contract`` (memoised here).

    ``pronounced`` turns a voice's contract into that of a stem with pronunciations (the
    engine's ``pronunciation_contract``); asked only for such stems."""

    def __init__(
        self,
        contract: Callable[[VoiceSettings], StemContract],
        pronounced: Callable[[StemContract], StemContract] | None = None,
    ) -> None:
        self._contract = contract
        self._pronounced = pronounced
        self._by_voice: dict[tuple[VoiceSettings, bool], StemContract] = {}

    def __call__(self, voice: VoiceSettings, pronounced: bool = False) -> StemContract:
        c = self._by_voice.get((voice, pronounced))
        if c is None:
            c = self._contract(voice) if not pronounced else self._pronounce(self(voice))
            self._by_voice[(voice, pronounced)] = c
        return c

    def _pronounce(self, contract: StemContract) -> StemContract:
        if self._pronounced is None:
            from hybrid_audio_dagster.core.tts.base import PronunciationUnsupportedError

            raise PronunciationUnsupportedError(f"the {contract.engine} engine cannot apply pronunciations")
        return self._pronounced(contract)


@dataclass(frozen=True)
class Slot:
    """One stem a partition needs: a template segment rendered for the partition's item."""

    partition: str
    slot: str  # "<template>/<segment>"
    text: str
    voice: VoiceSettings
    signature: str
    engine: str
    say: tuple[Say, ...] = ()  # the pronunciations its text uses (part of the signature)


def render_slots(
    kind: SegmentKind,
    keys: Iterable[str],
    templates: Mapping[str, Template],
    displays: Mapping[str, str],
    contract_for: Callable[..., StemContract],
    says: Mapping[str, tuple[Say, ...]] | None = None,
) -> tuple[list[Slot], list[str]]:
    """Every slot of ``keys`` with its signature; and the keys no dataset or template has.

    ``says``: key → the item's pronunciations; a slot gets those its rendered text holds."""
    says = says or {}
    slots: list[Slot] = []
    missing: list[str] = []
    for key in keys:
        if kind is SegmentKind.SCRIPT:
            tpl = templates.get(key)
            if tpl is None:
                missing.append(key)
                continue
            owners = [(tpl, {})]
        else:
            display = displays.get(key)
            if display is None:
                missing.append(key)
                continue
            arg = {"name": display} if kind is SegmentKind.NAME else {"developer": display}
            owners = [(tpl, arg) for tpl in templates.values()]
        for tpl, arg in owners:
            voice = tpl.voice_settings()
            contract = contract_for(voice)
            for seg in tpl.segments_of(kind):
                text = seg.render(**arg)
                say = says_in_text(text, says.get(key, ())) if key in says else ()
                c = contract_for(voice, True) if say else contract
                slots.append(Slot(key, f"{tpl.id}/{seg.id}", text, voice, stem_signature(text, c, say), c.engine, say))
    return slots, missing


@dataclass
class Freshness:
    """What a set of stem partitions lacks, judged per slot by signature."""

    needed: int  # distinct signatures the partitions need
    stale_partitions: list[str]  # whose latest record lacks a current signature: they need a run
    to_synthesize: dict[str, Slot] = field(default_factory=dict)  # stored nowhere: a TTS call each

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.to_synthesize.values())

    @property
    def current(self) -> bool:
        return not self.stale_partitions


def assess(
    keys: Iterable[str],
    slots: Iterable[Slot],
    recorded: Mapping[str, set[str]],
    index: StemIndex,
    *,
    deep: bool = False,
) -> Freshness:
    """A partition is current when its latest record holds every signature its slots need
    and the stems are stored; a signature stored nowhere will cost a TTS call.

    ``recorded``: partition → signatures its latest materialization recorded.
    """
    by_partition: dict[str, list[Slot]] = {}
    for s in slots:
        by_partition.setdefault(s.partition, []).append(s)
    stored: dict[str, bool] = {}
    to_synthesize: dict[str, Slot] = {}
    stale: list[str] = []
    for key in keys:
        have = recorded.get(key)
        partition_ok = have is not None
        for s in by_partition.get(key, ()):
            ok = stored.get(s.signature)
            if ok is None:
                ok = stored[s.signature] = index.lookup(s.signature, s.engine, deep=deep) is not None
                if not ok:
                    to_synthesize[s.signature] = s
            if not ok or have is None or s.signature not in have:
                partition_ok = False
        if not partition_ok:
            stale.append(key)
    return Freshness(needed=len(stored), stale_partitions=stale, to_synthesize=to_synthesize)
