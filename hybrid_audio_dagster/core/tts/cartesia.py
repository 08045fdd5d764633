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

import email.utils
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..audio.errors import AudioError
from ..audio.wav import encode_wav, load_wav
from .base import StemContract, TTSError, VoiceSettings

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

log = logging.getLogger(__name__)

ENGINE_NAME = "cartesia"
DEFAULT_BASE_URL = "https://api.cartesia.ai"
DEFAULT_CARTESIA_VERSION = "2026-03-01"  # first version whose errors are JSON objects
DEFAULT_MODEL_ID = "sonic-3"
#: "Sarah", the public voice used in Cartesia's own quickstart examples.
DEFAULT_VOICE_ID = "694f9389-aac1-45b6-b726-9d9369183238"

#: Documented ``Cartesia-Version`` values (2026-08-14 is what SDK 4.2.0 sends).
KNOWN_API_VERSIONS: tuple[str, ...] = ("2024-06-10", "2024-11-13", "2025-04-16", "2026-03-01", "2026-08-14")
SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
#: Every raw encoding the API offers for the wav container.
API_ENCODINGS: tuple[str, ...] = ("pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw")
#: The subset our WAV core decodes bit-exactly (G.711 mu-law/A-law would need conversion).
SUPPORTED_ENCODINGS: tuple[str, ...] = ("pcm_s16le", "pcm_f32le")
SPEED_RANGE = (0.6, 1.5)
VOLUME_RANGE = (0.5, 2.0)
#: The ``language`` codes Sonic-3 accepts (``SupportedLanguage`` in SDK 4.2.0, 44 codes).
SONIC3_LANGUAGES: frozenset[str] = frozenset(
    "en fr de es pt zh ja hi it ko nl pl ru sv tr tl bg ro ar cs el fi hr ms sk da ta uk hu "
    "no vi bn th he ka id te gu kn ml mr pa or ur".split()
)
#: ``generation_config.emotion`` values documented for Sonic-3 (``Emotion`` in SDK 4.2.0).
EMOTIONS: frozenset[str] = frozenset(
    "neutral happy excited enthusiastic elated euphoric triumphant amazed surprised flirtatious "
    "curious content peaceful serene calm grateful affectionate trust sympathetic anticipation "
    "mysterious angry mad outraged frustrated agitated threatened disgusted contempt envious "
    "sarcastic ironic sad dejected melancholic disappointed hurt guilty bored tired rejected "
    "nostalgic wistful apologetic hesitant insecure confused resigned anxious panicked alarmed "
    "scared proud confident distant skeptical contemplative determined".split()
)

#: Statuses worth another attempt (the SDK retries the same set).
RETRYABLE_STATUSES = frozenset({408, 409, 429})
AUDIO_CONTENT_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "application/octet-stream"})

# Plausible speech duration. Fast read speech is ~15-20 characters per second and a slow,
# spelled-out reading ~3; the bounds are several times wider so only a broken answer (an
# empty clip, a truncated clip, a minute of babble for "Hi") fails.
MIN_SECONDS_PER_CHAR = 0.01
MAX_SECONDS_PER_CHAR = 0.35
MIN_DURATION_S = 0.05
MAX_DURATION_SLACK_S = 1.5  # leading/trailing silence the model may add
_ERROR_BODY_LIMIT = 64 * 1024  # an error page is read up to this many bytes
_WAV_HEADER_ALLOWANCE = 64 * 1024

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# sonic-3, sonic-3.5, dated snapshots such as sonic-3-2025-10-27. generation_config only
# exists from Sonic-3 on, so older models would silently ignore speed/volume/emotion.
_MODEL_RE = re.compile(r"^sonic-(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:-\d{4}-\d{2}-\d{2})?$")
_LOCALE_RE = re.compile(r"^(?P<lang>[a-z]{2})-[A-Za-z]{2,4}$")
_TAG_RE = re.compile(r"<[^>]*>")
_BREAK_RE = re.compile(r"<break\s+time\s*=\s*[\"']?\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)\s*[\"']?\s*/?>", re.I)
_SPELL_RE = re.compile(r"<spell>(?P<body>.*?)</spell>", re.I | re.S)
_HTML_TITLE_RE = re.compile(r"<title[^>]*>(?P<title>.*?)</title>", re.I | re.S)


# --------------------------------------------------------------------------- errors


class CartesiaError(TTSError):
    """Base class of every Cartesia client error. Messages never contain the API key."""


class CartesiaConfigError(CartesiaError, ValueError):
    """A setting or a request value is outside what the API documents; nothing was sent."""


class CartesiaAPIError(CartesiaError):
    """The API answered with an error status that is not worth retrying.

    Attributes mirror the API's JSON error object (``error_code``, ``title``, ``message``,
    ``request_id``); for legacy plain-text bodies only ``message`` is set.
    """

    def __init__(
        self,
        text: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        title: str | None = None,
        api_message: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.error_code = error_code
        self.title = title
        self.api_message = api_message
        self.request_id = request_id
        self.method = method
        self.path = path


class CartesiaRequestError(CartesiaAPIError):
    """400/422 (or another unexpected 4xx): the API refused the request as malformed."""


class CartesiaAuthError(CartesiaAPIError):
    """401: the API key is missing, malformed, revoked or for another environment."""


class CartesiaForbiddenError(CartesiaAuthError):
    """403: the key is valid but may not use this model, voice or feature."""


class CartesiaBillingError(CartesiaAPIError):
    """402: out of credits or the plan does not allow the request (not retried: costs money)."""


class CartesiaNotFoundError(CartesiaAPIError):
    """404: the endpoint or the referenced object (voice, dictionary) does not exist."""


class CartesiaVoiceNotFoundError(CartesiaNotFoundError):
    """The voice id is unknown to this account (``check_voice``)."""


class CartesiaRetryExhaustedError(CartesiaError):
    """Every attempt failed with a retryable error (429, 5xx, timeout, connection)."""

    def __init__(
        self,
        text: str,
        *,
        attempts: int = 0,
        last_status: int | None = None,
        last_error_code: str | None = None,
        last_error: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(text)
        self.attempts = attempts
        self.last_status = last_status
        self.last_error_code = last_error_code
        self.last_error = last_error
        self.request_id = request_id


class CartesiaBadAudioError(CartesiaError):
    """A 200 answer whose body is not the audio that was asked for. Never returned as a stem.

    Not retried: the request was billed and a well-formed request answered with malformed
    audio is a server defect that repeating it is unlikely to fix (a connection dropped
    mid-body is a transport error instead, and that one is retried).
    """

    def __init__(self, text: str, *, request_id: str | None = None) -> None:
        super().__init__(text)
        self.request_id = request_id


_STATUS_ERRORS: dict[int, type[CartesiaAPIError]] = {
    400: CartesiaRequestError,
    401: CartesiaAuthError,
    402: CartesiaBillingError,
    403: CartesiaForbiddenError,
    404: CartesiaNotFoundError,
    422: CartesiaRequestError,
}


# --------------------------------------------------------------------------- config


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise CartesiaConfigError(f"{name} must be a number in [{lo}, {hi}] (Cartesia Sonic-3), got {value!r}")


def _check_voice_id(voice_id: object, what: str = "voice id") -> str:
    if not isinstance(voice_id, str) or not _UUID_RE.match(voice_id):
        raise CartesiaConfigError(f"{what} must be a Cartesia voice UUID (8-4-4-4-12 hex digits), got {voice_id!r}")
    return voice_id.lower()


@dataclass(frozen=True)
class CartesiaConfig:
    """Everything about the Cartesia connection except the API key (safe to log).

    Validated on construction, so an invalid value fails before any request is sent.
    """

    base_url: str = DEFAULT_BASE_URL
    cartesia_version: str = DEFAULT_CARTESIA_VERSION
    model_id: str = DEFAULT_MODEL_ID
    default_voice_id: str = DEFAULT_VOICE_ID
    sample_rate: int = 44100
    encoding: str = "pcm_s16le"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_concurrency: int = 3

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CartesiaConfigError(f"base_url must be an http(s) URL with a host, got {self.base_url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise CartesiaConfigError("base_url must not carry credentials, a query or a fragment")
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise CartesiaConfigError(
                f"base_url must be https (plain http only for a loopback host), got {self.base_url!r}"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not _VERSION_RE.match(self.cartesia_version):
            raise CartesiaConfigError(f"cartesia_version must be a YYYY-MM-DD date, got {self.cartesia_version!r}")
        if self.cartesia_version not in KNOWN_API_VERSIONS:
            # New API versions appear without notice; a typo is more likely, but not certain.
            log.warning("Cartesia-Version %s is not one of the documented %s", self.cartesia_version, KNOWN_API_VERSIONS)
        m = _MODEL_RE.match(self.model_id)
        if not m or int(m["major"]) < 3:
            raise CartesiaConfigError(
                f"model_id must be a Sonic-3 (or newer) model such as 'sonic-3' or 'sonic-3-2025-10-27', "
                f"got {self.model_id!r}; older models ignore generation_config (speed/volume/emotion)"
            )
        object.__setattr__(self, "default_voice_id", _check_voice_id(self.default_voice_id, "default_voice_id"))
        if self.sample_rate not in SAMPLE_RATES:
            raise CartesiaConfigError(f"sample_rate must be one of {SAMPLE_RATES}, got {self.sample_rate!r}")
        if self.encoding not in SUPPORTED_ENCODINGS:
            why = " (valid for the API, but the audio core cannot join G.711 audio)" if self.encoding in API_ENCODINGS else ""
            raise CartesiaConfigError(f"encoding must be one of {SUPPORTED_ENCODINGS}, got {self.encoding!r}{why}")
        for name in ("connect_timeout_s", "read_timeout_s", "backoff_base_s", "backoff_max_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise CartesiaConfigError(f"{name} must be > 0, got {value!r}")
        if self.backoff_max_s < self.backoff_base_s:
            raise CartesiaConfigError("backoff_max_s must be >= backoff_base_s")
        if not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= 20:
            raise CartesiaConfigError(f"max_retries must be an integer in [0, 20], got {self.max_retries!r}")
        if not isinstance(self.max_concurrency, int) or not 1 <= self.max_concurrency <= 64:
            raise CartesiaConfigError(f"max_concurrency must be an integer in [1, 64], got {self.max_concurrency!r}")

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def endpoint(self) -> str:
        """The API root as part of the stem contract: scheme, host, port and path, lowercased host."""
        parts = urlsplit(self.base_url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}{parts.path}"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plausible_duration_range(text: str, speed: float = 1.0) -> tuple[float, float]:
    """Bounds (seconds) a correct rendering of ``text`` falls within, tags included.

    ``<break time=…/>`` pauses are added to the ceiling and ``<spell>`` content counts three
    times (spelled characters are slow); the bounds are deliberately loose (see constants).
    """
    breaks = 0.0
    for m in _BREAK_RE.finditer(text):
        value = float(m["value"])
        breaks += value / 1000 if m["unit"].lower() == "ms" else value
    spelled = sum(len(m["body"]) for m in _SPELL_RE.finditer(text))
    spoken = " ".join(_TAG_RE.sub(" ", text).split())
    n = len(spoken)
    lo = max(MIN_DURATION_S, n * MIN_SECONDS_PER_CHAR / speed)
    hi = MAX_DURATION_SLACK_S + (n + 2 * spelled) * MAX_SECONDS_PER_CHAR / speed + breaks
    return lo, hi


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class CartesiaClient:
    """Thread-safe Cartesia TTS client implementing :class:`~.base.TTSEngine`.

    Args:
        config: Connection and output settings (validated).
        api_key: The Cartesia API key. Kept private; never logged or shown in a repr.
        sleep: Called with the backoff delay in seconds between attempts (inject a recorder
            in tests so they don't wait).
        rng: Source of backoff jitter (inject a seeded ``random.Random`` for reproducibility).
        transport: Optional ``httpx`` transport (tests, proxies).
    """

    def __init__(
        self,
        config: CartesiaConfig,
        api_key: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise CartesiaConfigError("the Cartesia API key is empty (set CARTESIA_API_KEY)")
        if api_key != api_key.strip() or any(c in api_key for c in "\r\n\t "):
            # Don't echo it: this message must not contain the key.
            raise CartesiaConfigError("the Cartesia API key contains whitespace (check how CARTESIA_API_KEY is set)")
        self.config = config
        self._api_key = api_key
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()  # random.Random is not documented as thread-safe
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._http = httpx.Client(
            base_url=config.base_url,
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
            ),
            headers={"Cartesia-Version": config.cartesia_version},
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key to another host
        )

    def __repr__(self) -> str:
        c = self.config
        return f"CartesiaClient(host={c.host!r}, model_id={c.model_id!r}, cartesia_version={c.cartesia_version!r}, api_key=***)"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CartesiaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ TTSEngine

    def contract(self, voice: VoiceSettings) -> StemContract:
        """The contract for ``voice``; validates the settings (no network)."""
        self._check_voice_settings(voice)
        c = self.config
        return StemContract(
            engine=ENGINE_NAME,
            engine_version=c.cartesia_version,
            voice=self._voice_id(voice),
            model=c.model_id,
            language=voice.language,
            speed=float(voice.speed),
            volume=float(voice.volume),
            emotion=voice.emotion,
            sample_rate=c.sample_rate,
            encoding=c.encoding,
            channels=1,
            endpoint=c.endpoint,
        )

    def build_request(self, text: str, voice: VoiceSettings) -> dict[str, Any]:
        """The JSON body of ``POST /tts/bytes`` for ``text`` (validated; nothing is sent)."""
        if not isinstance(text, str) or not text.strip():
            raise CartesiaConfigError("transcript is empty")
        self._check_voice_settings(voice)
        c = self.config
        body: dict[str, Any] = {
            "model_id": c.model_id,
            "transcript": text,
            "voice": {"mode": "id", "id": self._voice_id(voice)},
            "output_format": {"container": "wav", "encoding": c.encoding, "sample_rate": c.sample_rate},
        }
        lang = voice.language
        if lang in SONIC3_LANGUAGES:
            body["language"] = lang
        else:  # a region-qualified locale such as en-GB (validated above); never both fields
            body["locale"] = lang
        generation: dict[str, Any] = {"speed": float(voice.speed), "volume": float(voice.volume)}
        if voice.emotion is not None:
            generation["emotion"] = voice.emotion
        body["generation_config"] = generation
        return body

    def synthesize(self, text: str, voice: VoiceSettings) -> bytes:
        """Speak ``text``; return a canonical WAV (exact PCM frames received, clean header).

        Raises:
            CartesiaConfigError: invalid settings or empty text (no request sent).
            CartesiaAPIError: a final API error (subclass per status).
            CartesiaRetryExhaustedError: every attempt hit a retryable failure.
            CartesiaBadAudioError: the answer was not valid audio in the requested format.
        """
        body = self.build_request(text, voice)
        lo, hi = plausible_duration_range(text, voice.speed)
        bytes_per_second = self.config.sample_rate * (4 if self.config.encoding == "pcm_f32le" else 2)
        max_bytes = int(hi * bytes_per_second) + _WAV_HEADER_ALLOWANCE
        answer = self._call("POST", "/tts/bytes", json_body=body, accept="audio/wav", max_body=max_bytes)
        return self._check_audio(answer, lo, hi)

    # ------------------------------------------------------------------ voices

    def check_voice(self, voice_id: str | None = None) -> dict[str, Any]:
        """Fetch ``GET /voices/{id}`` (default voice if None) and return the voice object.

        Raises:
            CartesiaVoiceNotFoundError: the id is unknown to this account.
        """
        vid = _check_voice_id(voice_id if voice_id is not None else self.config.default_voice_id)
        try:
            answer = self._call("GET", f"/voices/{vid}", accept="application/json", max_body=_ERROR_BODY_LIMIT * 16)
        except CartesiaNotFoundError as exc:
            raise CartesiaVoiceNotFoundError(
                f"Cartesia voice {vid} not found for this API key ({exc.api_message or 'no details'}; "
                f"request_id={exc.request_id})",
                status=exc.status,
                error_code=exc.error_code,
                title=exc.title,
                api_message=exc.api_message,
                request_id=exc.request_id,
                method="GET",
                path=f"/voices/{vid}",
            ) from None
        voice = self._json(answer)
        if not isinstance(voice, dict) or str(voice.get("id", "")).lower() != vid:
            raise CartesiaRequestError(f"GET /voices/{vid} returned an unexpected object", status=answer.status)
        return voice

    def iter_voices(self, *, page_size: int = 100, q: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield every voice visible to the key (``GET /voices``, cursor paging)."""
        if not 1 <= page_size <= 100:
            raise CartesiaConfigError(f"page_size must be in [1, 100], got {page_size!r}")
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if after:
                params["starting_after"] = after
            if q:
                params["q"] = q
            page = self._json(
                self._call("GET", "/voices", params=params, accept="application/json", max_body=_ERROR_BODY_LIMIT * 64)
            )
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise CartesiaRequestError("GET /voices returned no 'data' list")
            yield from data
            if not data or not page.get("has_more", len(data) == page_size):
                return
            after = data[-1]["id"]

    # ------------------------------------------------------------------ internals

    def _voice_id(self, voice: VoiceSettings) -> str:
        return _check_voice_id(voice.voice_id) if voice.voice_id else self.config.default_voice_id

    def _check_voice_settings(self, voice: VoiceSettings) -> None:
        lang = voice.language
        m = _LOCALE_RE.match(lang) if isinstance(lang, str) else None
        if lang not in SONIC3_LANGUAGES and not (m and m["lang"] in SONIC3_LANGUAGES):
            raise CartesiaConfigError(
                f"language {lang!r} is not supported by Sonic-3 (codes: {', '.join(sorted(SONIC3_LANGUAGES))}; "
                "or a locale such as 'en-GB')"
            )
        if voice.voice_id:
            _check_voice_id(voice.voice_id)
        _check_range("speed", voice.speed, SPEED_RANGE)
        _check_range("volume", voice.volume, VOLUME_RANGE)
        if voice.emotion is not None and voice.emotion not in EMOTIONS:
            raise CartesiaConfigError(f"emotion {voice.emotion!r} is not a documented Sonic-3 emotion")

    def _redact(self, text: str) -> str:
        # A server may echo the key it rejected; it must not reach an exception or a log.
        return text.replace(self._api_key, "***") if self._api_key else text

    def _backoff(self, retry_number: int, retry_after: float | None) -> float:
        cap = self.config.backoff_max_s
        if retry_after is not None:
            return min(cap, max(0.0, retry_after))
        # "Full jitter": uniform in [0, min(cap, base·2^n)] spreads synchronized clients apart.
        with self._rng_lock:
            return self._rng.uniform(0.0, min(cap, self.config.backoff_base_s * 2 ** (retry_number - 1)))

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        accept: str,
        max_body: int,
    ) -> _Answer:
        attempts = 1 + self.config.max_retries
        last_status: int | None = None
        last_code: str | None = None
        last_error = ""
        last_request_id: str | None = None
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                with self._slots:  # at most max_concurrency requests in flight per client
                    answer = self._send(method, path, json_body, params, accept, max_body)
            except httpx.TimeoutException as exc:
                last_status, last_code = None, None
                last_error = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last_status, last_code = None, None
                last_error = self._redact(f"connection error ({type(exc).__name__}: {exc})")
            else:
                if 200 <= answer.status < 300:
                    return answer
                code, title, message, request_id = self._parse_error(answer)
                if answer.status not in RETRYABLE_STATUSES and answer.status < 500:
                    raise self._final_error(method, path, answer.status, code, title, message, request_id)
                last_status, last_code, last_request_id = answer.status, code, request_id
                last_error = f"HTTP {answer.status}" + (f" {code}" if code else "") + f": {message}"
                retry_after = _retry_after_seconds(answer.headers)
            if attempt == attempts:
                break
            delay = self._backoff(attempt, retry_after)
            log.warning(
                "Cartesia %s %s attempt %d/%d failed (%s); retrying in %.2f s",
                method, path, attempt, attempts, last_error, delay,
            )
            self._sleep(delay)
        status_text = f"last status {last_status}" if last_status is not None else "no HTTP status"
        raise CartesiaRetryExhaustedError(
            f"Cartesia {method} {path} failed after {attempts} attempt(s) ({status_text}): {last_error}",
            attempts=attempts,
            last_status=last_status,
            last_error_code=last_code,
            last_error=last_error,
            request_id=last_request_id,
        )

    def _send(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        accept: str,
        max_body: int,
    ) -> _Answer:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": accept}
        kwargs: dict[str, Any] = {"headers": headers}
        if json_body is not None:
            # Serialise ourselves (compact, UTF-8) so the body is byte-stable for request logs.
            kwargs["content"] = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if params:
            kwargs["params"] = params
        with self._http.stream(method, path, **kwargs) as response:
            ok = 200 <= response.status_code < 300
            limit = max_body if ok else _ERROR_BODY_LIMIT
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    if ok:
                        raise CartesiaBadAudioError(
                            f"Cartesia {method} {path} answer exceeds {limit} bytes (longer than any plausible rendering)",
                            request_id=_header_request_id(response.headers),
                        )
                    chunks.append(chunk[: len(chunk) - (size - limit)])
                    break
                chunks.append(chunk)
            return _Answer(response.status_code, response.headers, b"".join(chunks))

    def _parse_error(self, answer: _Answer) -> tuple[str | None, str | None, str, str | None]:
        code, title, message, request_id = _parse_error_body(answer)
        return (
            self._redact(code) if code else None,
            self._redact(title) if title else None,
            self._redact(message),
            self._redact(request_id) if request_id else None,
        )

    def _final_error(
        self,
        method: str,
        path: str,
        status: int,
        code: str | None,
        title: str | None,
        message: str,
        request_id: str | None,
    ) -> CartesiaAPIError:
        cls = _STATUS_ERRORS.get(status, CartesiaRequestError)
        details = ", ".join(f"{k}={v}" for k, v in (("error_code", code), ("request_id", request_id)) if v)
        text = f"Cartesia {method} {path} -> HTTP {status}" + (f" ({details})" if details else "") + f": {message}"
        return cls(
            text,
            status=status,
            error_code=code,
            title=title,
            api_message=message,
            request_id=request_id,
            method=method,
            path=path,
        )

    def _json(self, answer: _Answer) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError:
            raise CartesiaRequestError(
                f"expected a JSON answer, got {_content_type(answer.headers) or 'no content type'}",
                status=answer.status,
            ) from None

    def _check_audio(self, answer: _Answer, lo: float, hi: float) -> bytes:
        request_id = _header_request_id(answer.headers)

        def bad(problem: str) -> CartesiaBadAudioError:
            rid = f" (request_id={request_id})" if request_id else ""
            text = self._redact(f"Cartesia /tts/bytes answer rejected{rid}: {problem}")
            return CartesiaBadAudioError(text, request_id=request_id)

        if answer.status != 200:
            raise bad(f"status {answer.status}, expected 200")
        ctype = _content_type(answer.headers)
        if ctype not in AUDIO_CONTENT_TYPES:
            raise bad(f"content type {ctype or 'missing'!r} is not audio/wav")
        try:
            audio = load_wav(answer.body, source="Cartesia answer")
        except AudioError as exc:
            raise bad(f"{type(exc).__name__}: {exc.problem}") from None
        c = self.config
        if audio.sample_rate != c.sample_rate or audio.channels != 1 or audio.sample_format != c.encoding:
            raise bad(
                f"format {audio.sample_rate} Hz/{audio.channels} ch/{audio.sample_format} does not match the "
                f"request ({c.sample_rate} Hz/1 ch/{c.encoding})"
            )
        if not lo <= audio.duration_s <= hi:
            raise bad(f"duration {audio.duration_s:.3f} s is implausible for the text (expected {lo:.2f}-{hi:.2f} s)")
        # Re-emit with a canonical header: streaming encoders may declare 0xFFFFFFFF sizes.
        return encode_wav(audio)


def _content_type(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _header_request_id(headers: httpx.Headers) -> str | None:
    for name in ("x-request-id", "request-id", "cartesia-request-id"):
        if headers.get(name):
            return headers[name][:100]
    return None


def _parse_error_body(answer: _Answer) -> tuple[str | None, str | None, str, str | None]:
    """(error_code, title, message, request_id) from a JSON, HTML or plain-text error body."""
    ctype = _content_type(answer.headers)
    text = answer.body.decode("utf-8", errors="replace").strip()
    request_id = _header_request_id(answer.headers)
    if "json" in ctype or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error") if isinstance(data.get("error"), dict) else data
            code = inner.get("error_code") or inner.get("code")
            title = inner.get("title")
            message = inner.get("message") or inner.get("detail") or inner.get("error") or title
            rid = inner.get("request_id") or request_id
            return (
                str(code) if code else None,
                str(title) if title else None,
                _shorten(str(message) if message else text),
                str(rid) if rid else None,
            )
    if "html" in ctype or text[:15].lower().startswith(("<!doctype", "<html")):
        m = _HTML_TITLE_RE.search(text)
        title = " ".join(m["title"].split()) if m else None
        summary = f"HTML error page ({ctype or 'no content type'})" + (f": {title}" if title else "")
        return None, title, _shorten(summary), request_id
    # Legacy API versions answer errors as plain text.
    return None, None, _shorten(text) or f"empty {answer.status} body", request_id


def _shorten(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """``retry-after-ms`` (ms), else ``retry-after`` (seconds or an HTTP date), else None."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

