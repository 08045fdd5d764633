"""A stem's identity: everything that changes its audio, hashed into one signature.

The signature covers the text, the engine's contract (engine and its version or API
version, endpoint, voice, model, language, speed, volume, emotion, rate, encoding) and the
trim settings applied before the stem is stored. Same signature, same audio: a stem is
synthesized once per signature and never billed twice.

A stem whose text holds a word with a pronunciation (a dataset row's ``pronunciation``, or a
lexicon entry) also carries ``"say"``: the substitutions, written text → pronunciation, that
apply to its text. The key is absent for every other stem, so a plain name keeps the
signature it always had, and a changed respelling changes exactly the stems that say it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache

from hybrid_audio_dagster.core.audio.trim import DEFAULT_THRESHOLD_DBFS, DEFAULT_ZERO_DBFS
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.tts.base import StemContract

# bumped when the identity's shape changes, so old and new signatures never collide
SIGNATURE_VERSION = 2
TRIM_SETTINGS = {"threshold_dbfs": DEFAULT_THRESHOLD_DBFS, "zero_dbfs": DEFAULT_ZERO_DBFS}


def stem_identity(text: str, contract: StemContract, say: Iterable[Say] = ()) -> dict:
    """The JSON-serialisable identity of the audio for ``text`` under ``contract``."""
    identity = {"v": SIGNATURE_VERSION, "text": text, "contract": contract.to_dict(), "trim": TRIM_SETTINGS}
    entries = sorted(s.to_list() for s in say)
    if entries:
        identity["say"] = entries
    return identity


def signature_of_identity(identity: dict) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace): stable across processes."""
    payload = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@lru_cache(maxsize=65536)
def stem_signature(text: str, contract: StemContract, say: tuple[Say, ...] = ()) -> str:
    """The signature of ``text`` under ``contract`` (memoised: contracts are hashable)."""
    return signature_of_identity(stem_identity(text, contract, say))
