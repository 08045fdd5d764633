"""Cartesia settings: documented constants, :class:`CartesiaConfig` and value checks (no network)."""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hybrid_audio_dagster.core.tts.cartesia.errors import CartesiaConfigError

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
ERROR_BODY_LIMIT = 64 * 1024  # an error page is read up to this many bytes
WAV_HEADER_ALLOWANCE = 64 * 1024

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# sonic-3, sonic-3.5, dated snapshots such as sonic-3-2025-10-27. generation_config only
# exists from Sonic-3 on, so older models would silently ignore speed/volume/emotion.
_MODEL_RE = re.compile(r"^sonic-(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:-\d{4}-\d{2}-\d{2})?$")
_DICT_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LOCALE_RE = re.compile(r"^(?P<lang>[a-z]{2})-[A-Za-z]{2,4}$")
_TAG_RE = re.compile(r"<[^>]*>")
_BREAK_RE = re.compile(r"<break\s+time\s*=\s*[\"']?\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)\s*[\"']?\s*/?>", re.I)
_SPELL_RE = re.compile(r"<spell>(?P<body>.*?)</spell>", re.I | re.S)


def check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise CartesiaConfigError(f"{name} must be a number in [{lo}, {hi}] (Cartesia Sonic-3), got {value!r}")


def check_voice_id(voice_id: object, what: str = "voice id") -> str:
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
    pronunciation_dict_name: str = "hybrid-audio"  # the project's dictionary, found by name
    pronunciation_dict_id: str | None = None  # or pinned to an existing dictionary

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CartesiaConfigError(f"base_url must be an http(s) URL with a host, got {self.base_url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise CartesiaConfigError("base_url must not carry credentials, a query or a fragment")
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise CartesiaConfigError(f"base_url must be https (plain http only for a loopback host), got {self.base_url!r}")
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
        object.__setattr__(self, "default_voice_id", check_voice_id(self.default_voice_id, "default_voice_id"))
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
        if not isinstance(self.pronunciation_dict_name, str) or not _DICT_NAME_RE.match(self.pronunciation_dict_name):
            raise CartesiaConfigError(
                f"pronunciation_dict_name must be 1-64 letters, digits, '-', '_' or '.', got {self.pronunciation_dict_name!r}"
            )
        if self.pronunciation_dict_id is not None and not _DICT_NAME_RE.match(str(self.pronunciation_dict_id)):
            raise CartesiaConfigError(
                f"pronunciation_dict_id must be 1-64 letters, digits, '-', '_' or '.', got {self.pronunciation_dict_id!r}"
            )
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
