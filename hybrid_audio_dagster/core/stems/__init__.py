"""Stems: identity (signatures), the write-once store, and lookup by signature."""

from hybrid_audio_dagster.core.stems.identity import SIGNATURE_VERSION, TRIM_SETTINGS, stem_identity, stem_signature
from hybrid_audio_dagster.core.stems.index import ContractCache, Freshness, MissingStemError, Slot, StemIndex, assess, render_slots
from hybrid_audio_dagster.core.stems.store import StemOutcome, StemRecord, StemStore

__all__ = [
    "SIGNATURE_VERSION",
    "TRIM_SETTINGS",
    "ContractCache",
    "Freshness",
    "MissingStemError",
    "Slot",
    "StemIndex",
    "StemOutcome",
    "StemRecord",
    "StemStore",
    "assess",
    "render_slots",
    "stem_identity",
    "stem_signature",
]
