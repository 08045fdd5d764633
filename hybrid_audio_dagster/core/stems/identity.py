"""A stem's identity: everything that changes its audio, hashed into one signature.

The signature covers the text, the engine's contract (engine and its version or API
version, endpoint, voice, model, language, speed, volume, emotion, rate, encoding) and the
trim settings applied before the stem is stored. Same signature, same audio: a stem is
synthesized once per signature and never billed twice.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from ..audio.trim import DEFAULT_THRESHOLD_DBFS, DEFAULT_ZERO_DBFS
from ..tts.base import StemContract

# bumped when the identity's shape changes, so old and new signatures never collide
SIGNATURE_VERSION = 2
TRIM_SETTINGS = {"threshold_dbfs": DEFAULT_THRESHOLD_DBFS, "zero_dbfs": DEFAULT_ZERO_DBFS}


def stem_identity(text: str, contract: StemContract) -> dict:
    """The JSON-serialisable identity of the audio for ``text`` under ``contract``."""
    return {"v": SIGNATURE_VERSION, "text": text, "contract": contract.to_dict(), "trim": TRIM_SETTINGS}


def signature_of_identity(identity: dict) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace): stable across processes."""
    payload = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@lru_cache(maxsize=65536)
def stem_signature(text: str, contract: StemContract) -> str:
    """The signature of ``text`` under ``contract`` (memoised: contracts are hashable)."""
    return signature_of_identity(stem_identity(text, contract))
