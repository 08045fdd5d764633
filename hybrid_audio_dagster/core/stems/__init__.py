"""Stems: identity (signatures), the write-once store, and lookup by signature."""

from .identity import SIGNATURE_VERSION, TRIM_SETTINGS, stem_identity, stem_signature
from .index import ContractCache, Freshness, MissingStemError, Slot, StemIndex, assess, render_slots
from .store import StemOutcome, StemRecord, StemStore

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
