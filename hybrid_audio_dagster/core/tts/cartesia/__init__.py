"""Cartesia Sonic-3 over HTTP: a thread-safe :class:`~.base.TTSEngine` (no Dagster import).

One :class:`CartesiaClient` wraps one ``httpx.Client`` (a thread-safe connection pool) and
one ``threading.BoundedSemaphore`` so the process never has more requests in flight than
the plan allows. Every setting is checked against the documented ranges *before* a request
is sent, because every request is billed; every answer is checked (status, content type,
WAV format, duration) before it is returned, because a bad stem would be cached and reused.

Errors are typed (:class:`CartesiaError` and subclasses of it). 400/401/402/403/404/422 are
final; 408/409/429/5xx, timeouts and connection errors are retried with exponential
backoff and full jitter, honouring ``retry-after-ms`` / ``retry-after``. The API key is
only ever placed in the ``Authorization`` header of a request: it is redacted from every
message built from a server answer, and never part of a repr.

API facts (checked against the official SDK ``cartesia==4.2.0``):
``POST /tts/bytes`` with ``Authorization: Bearer <key>`` and ``Cartesia-Version: <date>``;
``GET /voices/{id}``; ``GET /voices?limit=&starting_after=`` (cursor paging).
"""

from __future__ import annotations

from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient
from hybrid_audio_dagster.core.tts.cartesia.config import (
    API_ENCODINGS,
    DEFAULT_BASE_URL,
    DEFAULT_CARTESIA_VERSION,
    DEFAULT_MODEL_ID,
    DEFAULT_VOICE_ID,
    EMOTIONS,
    ENGINE_NAME,
    KNOWN_API_VERSIONS,
    SAMPLE_RATES,
    SONIC3_LANGUAGES,
    SPEED_RANGE,
    SUPPORTED_ENCODINGS,
    VOLUME_RANGE,
    CartesiaConfig,
    plausible_duration_range,
)
from hybrid_audio_dagster.core.tts.cartesia.errors import (
    CartesiaAPIError,
    CartesiaAuthError,
    CartesiaBadAudioError,
    CartesiaBillingError,
    CartesiaConfigError,
    CartesiaError,
    CartesiaForbiddenError,
    CartesiaNotFoundError,
    CartesiaRequestError,
    CartesiaRetryExhaustedError,
    CartesiaVoiceNotFoundError,
)
from hybrid_audio_dagster.core.tts.cartesia.http import _retry_after_seconds  # noqa: F401  (tests pin its parsing)

__all__ = [
    "API_ENCODINGS",
    "DEFAULT_BASE_URL",
    "DEFAULT_CARTESIA_VERSION",
    "DEFAULT_MODEL_ID",
    "DEFAULT_VOICE_ID",
    "EMOTIONS",
    "ENGINE_NAME",
    "KNOWN_API_VERSIONS",
    "SAMPLE_RATES",
    "SONIC3_LANGUAGES",
    "SPEED_RANGE",
    "SUPPORTED_ENCODINGS",
    "VOLUME_RANGE",
    "CartesiaAPIError",
    "CartesiaAuthError",
    "CartesiaBadAudioError",
    "CartesiaBillingError",
    "CartesiaClient",
    "CartesiaConfig",
    "CartesiaConfigError",
    "CartesiaError",
    "CartesiaForbiddenError",
    "CartesiaNotFoundError",
    "CartesiaRequestError",
    "CartesiaRetryExhaustedError",
    "CartesiaVoiceNotFoundError",
    "plausible_duration_range",
]
