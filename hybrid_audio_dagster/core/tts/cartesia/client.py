"""The Cartesia HTTP client: one ``httpx.Client`` and one semaphore per instance."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.core.audio.wav import encode_wav, load_wav
from hybrid_audio_dagster.core.tts.base import StemContract, VoiceSettings
from hybrid_audio_dagster.core.tts.cartesia.config import (
    AUDIO_CONTENT_TYPES,
    EMOTIONS,
    ENGINE_NAME,
    ERROR_BODY_LIMIT,
    LOCALE_RE,
    RETRYABLE_STATUSES,
    SONIC3_LANGUAGES,
    SPEED_RANGE,
    VOLUME_RANGE,
    WAV_HEADER_ALLOWANCE,
    CartesiaConfig,
    check_range,
    check_voice_id,
    plausible_duration_range,
)
from hybrid_audio_dagster.core.tts.cartesia.dictionary import PronunciationDictionary
from hybrid_audio_dagster.core.tts.cartesia.errors import (
    STATUS_ERRORS,
    CartesiaAPIError,
    CartesiaBadAudioError,
    CartesiaConfigError,
    CartesiaRequestError,
    CartesiaRetryExhaustedError,
)
from hybrid_audio_dagster.core.tts.cartesia.http import HTTPAnswer, content_type, header_request_id, parse_error_body, retry_after_seconds
from hybrid_audio_dagster.core.tts.cartesia.voices import VoicesMixin

log = logging.getLogger(__name__)


class CartesiaClient(VoicesMixin):
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
            limits=httpx.Limits(max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency),
            headers={"Cartesia-Version": config.cartesia_version},
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key to another host
        )
        self.dictionary = PronunciationDictionary(self, name=config.pronunciation_dict_name, pinned_id=config.pronunciation_dict_id)

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

    def pronunciation_contract(self, contract: StemContract) -> StemContract:
        """The contract of a stem spoken with the project's pronunciation dictionary."""
        return dataclasses.replace(contract, pronunciation=self.dictionary.label)

    def prepare_pronunciations(self, say: tuple) -> dict[str, Any]:
        """Put ``say``'s items into the dictionary (create or update); id, version, counts."""
        return self.dictionary.ensure(say)

    def build_request(self, text: str, voice: VoiceSettings, *, pronunciation_dict_id: str | None = None) -> dict[str, Any]:
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
        if pronunciation_dict_id:
            body["pronunciation_dict_id"] = pronunciation_dict_id
        return body

    def synthesize(self, text: str, voice: VoiceSettings, *, say: tuple = ()) -> bytes:
        """Speak ``text``; return a canonical WAV (exact PCM frames received, clean header).

        Raises:
            CartesiaConfigError: invalid settings or empty text (no request sent).
            CartesiaAPIError: a final API error (subclass per status).
            CartesiaRetryExhaustedError: every attempt hit a retryable failure.
            CartesiaBadAudioError: the answer was not valid audio in the requested format.
        """
        dict_id = self.dictionary.ensure(say)["dictionary_id"] if say else None  # no request when in step
        body = self.build_request(text, voice, pronunciation_dict_id=dict_id)
        lo, hi = plausible_duration_range(text, voice.speed)
        bytes_per_second = self.config.sample_rate * (4 if self.config.encoding == "pcm_f32le" else 2)
        max_bytes = int(hi * bytes_per_second) + WAV_HEADER_ALLOWANCE
        answer = self._call("POST", "/tts/bytes", json_body=body, accept="audio/wav", max_body=max_bytes)
        return self._check_audio(answer, lo, hi)

    # ------------------------------------------------------------------ internals

    def _voice_id(self, voice: VoiceSettings) -> str:
        return check_voice_id(voice.voice_id) if voice.voice_id else self.config.default_voice_id

    def _check_voice_settings(self, voice: VoiceSettings) -> None:
        lang = voice.language
        m = LOCALE_RE.match(lang) if isinstance(lang, str) else None
        if lang not in SONIC3_LANGUAGES and not (m and m["lang"] in SONIC3_LANGUAGES):
            raise CartesiaConfigError(
                f"language {lang!r} is not supported by Sonic-3 (codes: {', '.join(sorted(SONIC3_LANGUAGES))}; or a locale such as 'en-GB')"
            )
        if voice.voice_id:
            check_voice_id(voice.voice_id)
        check_range("speed", voice.speed, SPEED_RANGE)
        check_range("volume", voice.volume, VOLUME_RANGE)
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
    ) -> HTTPAnswer:
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
                retry_after = retry_after_seconds(answer.headers)
            if attempt == attempts:
                break
            delay = self._backoff(attempt, retry_after)
            log.warning(
                "Cartesia %s %s attempt %d/%d failed (%s); retrying in %.2f s",
                method,
                path,
                attempt,
                attempts,
                last_error,
                delay,
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
    ) -> HTTPAnswer:
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
            limit = max_body if ok else ERROR_BODY_LIMIT
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    if ok:
                        raise CartesiaBadAudioError(
                            f"Cartesia {method} {path} answer exceeds {limit} bytes (longer than any plausible rendering)",
                            request_id=header_request_id(response.headers),
                        )
                    chunks.append(chunk[: len(chunk) - (size - limit)])
                    break
                chunks.append(chunk)
            return HTTPAnswer(response.status_code, response.headers, b"".join(chunks))

    def _parse_error(self, answer: HTTPAnswer) -> tuple[str | None, str | None, str, str | None]:
        code, title, message, request_id = parse_error_body(answer)
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
        cls = STATUS_ERRORS.get(status, CartesiaRequestError)
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

    def _json(self, answer: HTTPAnswer) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError:
            raise CartesiaRequestError(
                f"expected a JSON answer, got {content_type(answer.headers) or 'no content type'}",
                status=answer.status,
            ) from None

    def _check_audio(self, answer: HTTPAnswer, lo: float, hi: float) -> bytes:
        request_id = header_request_id(answer.headers)

        def bad(problem: str) -> CartesiaBadAudioError:
            rid = f" (request_id={request_id})" if request_id else ""
            text = self._redact(f"Cartesia /tts/bytes answer rejected{rid}: {problem}")
            return CartesiaBadAudioError(text, request_id=request_id)

        if answer.status != 200:
            raise bad(f"status {answer.status}, expected 200")
        ctype = content_type(answer.headers)
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
