"""Cartesia client and TTS resources, against a real HTTP test double on 127.0.0.1.

No test waits for a real backoff: the client's ``sleep`` is a recorder, so retry-after
handling is asserted on the recorded delays. Nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import socket
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import dagster as dg
import httpx
import pytest

from hybrid_audio_dagster.core.audio.wav import load_wav, parse_wav
from hybrid_audio_dagster.core.stems import stem_signature
from hybrid_audio_dagster.core.tts.base import (
    TTSEngine,
    TTSError,
    VoiceSettings,
)
from hybrid_audio_dagster.core.tts.cartesia import (
    DEFAULT_VOICE_ID,
    CartesiaAPIError,
    CartesiaAuthError,
    CartesiaBadAudioError,
    CartesiaBillingError,
    CartesiaClient,
    CartesiaConfig,
    CartesiaConfigError,
    CartesiaForbiddenError,
    CartesiaNotFoundError,
    CartesiaRequestError,
    CartesiaRetryExhaustedError,
    CartesiaVoiceNotFoundError,
    _retry_after_seconds,
    plausible_duration_range,
)
from hybrid_audio_dagster.resources.tts import (
    CartesiaTTSResource,
    OfflineTTSResource,
    TTSResource,
    tts_resource_from_env,
)

from .cartesia_fake_server import DEFAULT_VOICES, FakeCartesia, fake_wav, tone_seconds

KEY = "sk_car_LEAKCANARY_7f3a9c2e51"  # distinctive: searched for in every output
VOICE = VoiceSettings(language="en")
OTHER_VOICE_ID = "a0e99841-438c-4a64-b679-ae501e7d6091"


class SleepRecorder(list):
    """Stands in for ``time.sleep``: records the requested delays, returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server():
    with FakeCartesia(KEY) as fake:
        yield fake


@pytest.fixture
def make_client():
    clients: list[CartesiaClient] = []

    def factory(server: FakeCartesia, *, sleep=None, key: str = KEY, **overrides: Any) -> CartesiaClient:
        settings = {"base_url": server.base_url, "read_timeout_s": 10.0, "connect_timeout_s": 2.0, **overrides}
        client = CartesiaClient(
            CartesiaConfig(**settings),
            key,
            sleep=sleep if sleep is not None else SleepRecorder(),
            rng=random.Random(1234),
        )
        clients.append(client)
        return client

    yield factory
    for c in clients:
        c.close()


# --------------------------------------------------------------------------- happy path


def test_request_is_exactly_the_documented_one(server, make_client):
    client = make_client(server)
    text = "Hello Ada, your order has shipped."
    wav = client.synthesize(text, VoiceSettings(language="en", voice_id=OTHER_VOICE_ID, speed=1.1, volume=0.9, emotion="calm"))

    [req] = server.requests
    assert (req.method, req.path, req.status) == ("POST", "/tts/bytes", 200)
    assert req.auth_ok and req.headers["authorization"] == "Bearer <valid key>"
    assert req.headers["cartesia-version"] == "2026-03-01"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "audio/wav"
    assert req.json == {
        "model_id": "sonic-3",
        "transcript": text,
        "voice": {"mode": "id", "id": OTHER_VOICE_ID},
        "output_format": {"container": "wav", "encoding": "pcm_s16le", "sample_rate": 44100},
        "language": "en",
        "generation_config": {"speed": 1.1, "volume": 0.9, "emotion": "calm"},
    }
    audio = load_wav(wav)
    assert (audio.sample_rate, audio.channels, audio.sample_format) == (44100, 1, "pcm_s16le")
    assert audio.frames == round(tone_seconds(text) * 44100)
    assert isinstance(client, TTSEngine)


def test_default_voice_float_encoding_and_locale(server, make_client):
    client = make_client(server, sample_rate=24000, encoding="pcm_f32le")
    wav = client.synthesize("Good morning", VoiceSettings(language="en-GB"))
    body = server.requests[0].json
    assert body["voice"] == {"mode": "id", "id": DEFAULT_VOICE_ID}
    assert body["output_format"] == {"container": "wav", "encoding": "pcm_f32le", "sample_rate": 24000}
    assert body["locale"] == "en-GB" and "language" not in body  # never both
    assert "emotion" not in body["generation_config"]
    audio = load_wav(wav)
    assert (audio.sample_rate, audio.sample_format) == (24000, "pcm_f32le")


def test_same_text_same_bytes_and_canonical_header(server, make_client):
    client = make_client(server)
    first = client.synthesize("Same words", VOICE)
    assert client.synthesize("Same words", VOICE) == first
    # A streaming-style header (0xFFFFFFFF sizes) is accepted and re-emitted canonically.
    server.script("streaming_header")
    streamed = client.synthesize("Same words", VOICE)
    assert streamed == first == fake_wav("Same words", 44100, "pcm_s16le")


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "config",
    [
        {"sample_rate": 44000},
        {"encoding": "pcm_mulaw"},
        {"encoding": "mp3"},
        {"default_voice_id": "sarah"},
        {"model_id": "sonic-2"},
        {"cartesia_version": "latest"},
        {"base_url": "ftp://api.cartesia.ai"},
        {"base_url": "https://user:pw@api.cartesia.ai"},
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"backoff_base_s": 2.0, "backoff_max_s": 1.0},
    ],
)
def test_invalid_config_rejected(config):
    with pytest.raises(CartesiaConfigError):
        CartesiaConfig(**config)


@pytest.mark.parametrize(
    ("text", "voice", "match"),
    [
        ("Hi", VoiceSettings(language="en", speed=0.5), "speed"),
        ("Hi", VoiceSettings(language="en", speed=1.6), "speed"),
        ("Hi", VoiceSettings(language="en", volume=0.4), "volume"),
        ("Hi", VoiceSettings(language="en", volume=2.5), "volume"),
        ("Hi", VoiceSettings(language="xx"), "language"),
        ("Hi", VoiceSettings(language="english"), "language"),
        ("Hi", VoiceSettings(language="en", voice_id="not-a-uuid"), "UUID"),
        ("Hi", VoiceSettings(language="en", emotion="grumpy"), "emotion"),
        ("   ", VOICE, "empty"),
    ],
)
def test_invalid_request_values_fail_before_any_request(server, make_client, text, voice, match):
    client = make_client(server)
    with pytest.raises(CartesiaConfigError, match=match):
        client.synthesize(text, voice)
    assert server.requests == []


def test_plausible_duration_bounds_cover_tags():
    lo, hi = plausible_duration_range("Hello there", 1.0)
    assert 0.05 <= lo < 0.5 < 2.0 < hi < 6
    _, hi_break = plausible_duration_range('Hello <break time="2s"/> there', 1.0)
    assert hi_break > hi + 2.0 - 1e-9


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry_after": "2"}, 2.0),
        ({"retry_after_ms": "1500"}, 1.5),
        ({"retry_after": "7", "retry_after_ms": "250"}, 0.25),  # the precise header wins
        ({"retry_after": "30"}, 8.0),  # capped by backoff_max_s
    ],
)
def test_429_honours_retry_after(server, make_client, headers, expected):
    sleeps = SleepRecorder()
    client = make_client(server, sleep=sleeps)
    server.script("rate_limited", times=2, **headers)
    wav = client.synthesize("Rate limited twice", VOICE)
    assert load_wav(wav).frames > 0
    assert [r.status for r in server.tts_requests] == [429, 429, 200]
    assert sleeps == [expected, expected]


def test_retry_after_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    value = _retry_after_seconds(httpx.Headers({"retry-after": format_datetime(when, usegmt=True)}))
    assert value is not None and 25 < value <= 30
    assert _retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None


def test_500_retried_with_full_jitter_then_success(server, make_client):
    sleeps = SleepRecorder()
    client = make_client(server, sleep=sleeps, backoff_base_s=0.5, backoff_max_s=8.0)
    server.script("error", times=2, status=500, error_code="internal_error")
    client.synthesize("Flaky server", VOICE)
    assert [r.status for r in server.tts_requests] == [500, 500, 200]
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_500_exhausts_the_retry_budget(server, make_client):
    sleeps = SleepRecorder()
    client = make_client(server, sleep=sleeps, max_retries=3, backoff_base_s=1.0, backoff_max_s=3.0)
    server.script("error", times=None, status=503, error_code="overloaded", message="try later")
    with pytest.raises(CartesiaRetryExhaustedError) as info:
        client.synthesize("Down", VOICE)
    exc = info.value
    assert (exc.attempts, exc.last_status, exc.last_error_code) == (4, 503, "overloaded")
    assert "4 attempt(s)" in str(exc) and "503" in str(exc) and "try later" in str(exc)
    assert len(server.tts_requests) == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [1.0, 2.0, 3.0], strict=True))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, CartesiaRequestError),
        (401, CartesiaAuthError),
        (402, CartesiaBillingError),
        (403, CartesiaForbiddenError),
        (404, CartesiaNotFoundError),
        (422, CartesiaRequestError),
    ],
)
def test_final_errors_are_typed_and_not_retried(server, make_client, status, error_type):
    sleeps = SleepRecorder()
    client = make_client(server, sleep=sleeps)
    server.script("error", status=status, error_code=f"code_{status}", message=f"explained {status}")
    with pytest.raises(error_type) as info:
        client.synthesize("Refused", VOICE)
    exc = info.value
    [req] = server.tts_requests
    assert sleeps == []
    assert isinstance(exc, CartesiaAPIError) and isinstance(exc, TTSError)
    assert exc.status == status
    assert exc.error_code == f"code_{status}"
    assert exc.api_message == f"explained {status}"
    assert exc.request_id == req.response_json["request_id"]
    assert exc.request_id in str(exc) and f"explained {status}" in str(exc)
    copy = pickle.loads(pickle.dumps(exc))  # survives Dagster's process boundaries
    assert type(copy) is error_type and (copy.status, copy.request_id, str(copy)) == (status, exc.request_id, str(exc))


def test_wrong_key_is_an_auth_error(server, make_client):
    client = make_client(server, key="sk_car_wrong")
    with pytest.raises(CartesiaAuthError, match="Invalid API key"):
        client.synthesize("Hi", VOICE)
    assert len(server.requests) == 1 and not server.requests[0].auth_ok


def test_timeout_is_retried_then_exhausted(server, make_client):
    client = make_client(server, read_timeout_s=0.3, max_retries=1)
    server.script("slow", times=None, delay_s=5.0)
    with pytest.raises(CartesiaRetryExhaustedError, match="timeout") as info:
        client.synthesize("Slow", VOICE)
    assert info.value.attempts == 2 and info.value.last_status is None
    assert len(server.tts_requests) == 2


def test_one_timeout_then_success(server, make_client):
    client = make_client(server, read_timeout_s=0.3)
    server.script("slow", delay_s=5.0)
    assert load_wav(client.synthesize("Slow once", VOICE)).frames > 0
    assert len(server.tts_requests) == 2


def test_connection_refused_is_retried_then_exhausted():
    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = SleepRecorder()
    client = CartesiaClient(CartesiaConfig(base_url=f"http://127.0.0.1:{port}", max_retries=2), KEY, sleep=sleeps)
    with client, pytest.raises(CartesiaRetryExhaustedError, match="ConnectError") as info:
        client.synthesize("Nobody home", VOICE)
    assert info.value.attempts == 3 and info.value.last_status is None and len(sleeps) == 2


def test_dropped_connection_is_retried(server, make_client):
    client = make_client(server)
    server.script("drop_connection")
    assert load_wav(client.synthesize("Dropped once", VOICE)).frames > 0
    assert len(server.tts_requests) == 2


# --------------------------------------------------------------------------- bad answers


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("truncated_wav", {}, "TruncatedWavError"),
        ("wrong_sample_rate", {"sample_rate": 22050}, "22050 Hz"),
        ("wrong_encoding", {"encoding": "pcm_f32le"}, "pcm_f32le"),
        ("silent", {}, "SilentAudioError"),
        ("content_type", {"content_type": "text/html; charset=utf-8"}, "text/html"),
        ("long_audio", {"seconds": 2.6}, "duration"),  # "Hi" cannot take 2.6 s
        ("long_audio", {"seconds": 60}, "exceeds"),  # stopped while downloading
    ],
)
def test_bad_audio_is_an_error_never_returned(server, make_client, kind, params, match):
    sleeps = SleepRecorder()
    client = make_client(server, sleep=sleeps)
    server.script(kind, **params)
    with pytest.raises(CartesiaBadAudioError, match=match):
        client.synthesize("Hi", VOICE)
    assert len(server.tts_requests) == 1 and sleeps == []  # billed once, not retried


def test_too_short_audio_is_rejected(server, make_client):
    client = make_client(server)
    server.script("long_audio", seconds=0.05)
    with pytest.raises(CartesiaBadAudioError, match="duration"):
        client.synthesize("A sentence of a reasonable length that cannot be spoken in fifty milliseconds.", VOICE)


def test_html_502_page_is_retried_and_reported(server, make_client):
    client = make_client(server, max_retries=2)
    server.script("html", times=None, status=502)
    with pytest.raises(CartesiaRetryExhaustedError) as info:
        client.synthesize("Gateway", VOICE)
    assert info.value.last_status == 502
    assert "HTML error page" in str(info.value) and "502 Bad Gateway" in str(info.value)
    assert len(server.tts_requests) == 3


def test_legacy_plain_text_errors(server, make_client):
    client = make_client(server)
    server.script("plain_text", status=400, text="Invalid voice ID")
    with pytest.raises(CartesiaRequestError) as info:
        client.synthesize("Hi", VOICE)
    assert info.value.api_message == "Invalid voice ID" and info.value.error_code is None
    server.script("plain_text", status=429, text="Rate limit exceeded")
    assert load_wav(client.synthesize("Hi", VOICE)).frames > 0
    assert [r.status for r in server.tts_requests] == [400, 429, 200]


# --------------------------------------------------------------------------- concurrency


def test_never_more_than_max_concurrency_in_flight():
    # 20 callers, cap 3; the server's plan cap is also 3, so a 4th request would get 429.
    with FakeCartesia(KEY, latency_s=0.15, concurrency_cap=3) as fake:
        client = CartesiaClient(CartesiaConfig(base_url=fake.base_url, max_concurrency=3), KEY, sleep=SleepRecorder())
        start = threading.Barrier(20)

        def work(i: int) -> bytes:
            start.wait()
            return client.synthesize(f"Message number {i}", VOICE)

        with client, ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(work, range(20)))
        assert fake.max_in_flight == 3
        assert [r.status for r in fake.tts_requests] == [200] * 20
        assert all(load_wav(w).frames > 0 for w in results)


def test_plan_cap_below_client_cap_is_absorbed_by_retries():
    # Client allows 4 in flight, the plan only 2: the excess gets 429 concurrency_limited
    # and is retried (real, short sleeps) until everything is through.
    with FakeCartesia(KEY, latency_s=0.05, concurrency_cap=2) as fake:
        config = CartesiaConfig(
            base_url=fake.base_url, max_concurrency=4, max_retries=20, backoff_base_s=0.01, backoff_max_s=0.1
        )
        with CartesiaClient(config, KEY) as client, ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda i: client.synthesize(f"Capped {i}", VOICE), range(8)))
        statuses = [r.status for r in fake.tts_requests]
        assert statuses.count(200) == 8 and set(statuses) <= {200, 429}
        assert fake.max_in_flight <= 4
        assert all(load_wav(w).frames > 0 for w in results)


# --------------------------------------------------------------------------- official SDK


@pytest.mark.parametrize(
    "voice",
    [
        VoiceSettings(language="en"),
        VoiceSettings(language="es", voice_id=OTHER_VOICE_ID, speed=0.8, volume=1.5, emotion="excited"),
        VoiceSettings(language="fr", speed=1.5, volume=0.5, emotion="calm"),
    ],
)
@pytest.mark.parametrize("fmt", [(44100, "pcm_s16le"), (24000, "pcm_f32le")])
def test_body_matches_official_sdk(server, make_client, voice, fmt):
    cartesia = pytest.importorskip("cartesia", reason="official SDK (cartesia==4.2.0) not installed")
    sample_rate, encoding = fmt
    text = "Bonjour, ¿qué tal? <break time=\"300ms\"/> Hello!"
    ours = make_client(server, sample_rate=sample_rate, encoding=encoding)
    ours.synthesize(text, voice)

    # What a developer following the SDK's documentation would pass for the same settings.
    generation_config: dict[str, Any] = {"speed": voice.speed, "volume": voice.volume}
    if voice.emotion is not None:
        generation_config["emotion"] = voice.emotion
    sdk = cartesia.Cartesia(api_key=KEY, base_url=server.base_url, max_retries=0)
    try:
        sdk_wav = sdk.tts.generate(
            model_id="sonic-3",
            transcript=text,
            voice={"mode": "id", "id": voice.voice_id or DEFAULT_VOICE_ID},
            output_format={"container": "wav", "encoding": encoding, "sample_rate": sample_rate},
            language=voice.language,
            generation_config=generation_config,
        ).read()
    finally:
        sdk.close()

    mine, theirs = server.tts_requests
    assert mine.json == theirs.json  # field by field, types included (1.0 vs 1)
    for name in ("model_id", "transcript", "voice", "output_format", "language", "generation_config"):
        assert json.dumps(mine.json[name], sort_keys=True) == json.dumps(theirs.json[name], sort_keys=True), name
    for header in ("authorization", "accept", "content-type"):
        assert mine.headers[header] == theirs.headers[header], header
    assert "cartesia-version" in theirs.headers and "cartesia-version" in mine.headers
    assert parse_wav(sdk_wav).sample_rate == sample_rate


# --------------------------------------------------------------------------- contract


def test_contract_fields_and_signature_sensitivity(server, make_client):
    client = make_client(server)
    base = client.contract(VoiceSettings(language="en"))
    assert base.to_dict() == {
        "engine": "cartesia",
        "engine_version": "2026-03-01",
        "voice": DEFAULT_VOICE_ID,
        "model": "sonic-3",
        "language": "en",
        "speed": 1.0,
        "volume": 1.0,
        "emotion": None,
        "sample_rate": 44100,
        "encoding": "pcm_s16le",
        "channels": 1,
        "endpoint": server.base_url,
    }
    text = "Hello"
    variants = [
        # the same API on another host (a staging or test endpoint) never counts as a hit
        make_client(server, base_url=server.base_url.replace("127.0.0.1", "localhost")).contract(VOICE),
        make_client(server, cartesia_version="2025-04-16").contract(VOICE),
        make_client(server, model_id="sonic-3-2025-10-27").contract(VOICE),
        make_client(server, sample_rate=48000).contract(VOICE),
        make_client(server, encoding="pcm_f32le").contract(VOICE),
        make_client(server, default_voice_id=DEFAULT_VOICES[2]["id"]).contract(VOICE),
        client.contract(VoiceSettings(language="es")),
        client.contract(VoiceSettings(language="en", voice_id=OTHER_VOICE_ID)),
        client.contract(VoiceSettings(language="en", speed=1.2)),
        client.contract(VoiceSettings(language="en", volume=1.3)),
        client.contract(VoiceSettings(language="en", emotion="calm")),
    ]
    signatures = {stem_signature(text, c) for c in [base, *variants]}
    assert len(signatures) == 1 + len(variants)
    assert stem_signature(text, client.contract(VoiceSettings(language="en"))) == stem_signature(text, base)
    # The voice actually used is what counts: an explicit id equal to the default is the same stem.
    explicit = client.contract(VoiceSettings(language="en", voice_id=DEFAULT_VOICE_ID.upper()))
    assert stem_signature(text, explicit) == stem_signature(text, base)
    assert server.requests == []  # contracts never touch the network


def test_base_url_must_be_https_except_on_loopback():
    for url in ("http://api.cartesia.ai", "http://10.0.0.5:8080", "http://staging.example.com/v1"):
        with pytest.raises(CartesiaConfigError, match="https"):
            CartesiaConfig(base_url=url)
    for url in ("https://api.cartesia.ai", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:9"):
        assert CartesiaConfig(base_url=url).base_url == url


# --------------------------------------------------------------------------- voices


def test_check_voice(server, make_client):
    client = make_client(server)
    assert client.check_voice(OTHER_VOICE_ID)["name"] == "Barbershop Man"
    assert client.check_voice()["id"] == DEFAULT_VOICE_ID
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(CartesiaVoiceNotFoundError, match=missing) as info:
        client.check_voice(missing)
    assert isinstance(info.value, CartesiaNotFoundError) and info.value.status == 404
    assert [r.path for r in server.requests][-1] == f"/voices/{missing}"
    with pytest.raises(CartesiaConfigError):
        client.check_voice("Barbershop Man")


def test_iter_voices_follows_the_cursor(server, make_client):
    client = make_client(server)
    voices = list(client.iter_voices(page_size=2))
    assert [v["id"] for v in voices] == [v["id"] for v in DEFAULT_VOICES]
    queries = [r.query for r in server.requests]
    assert queries[0] == {"limit": ["2"]}
    assert queries[1]["starting_after"] == [DEFAULT_VOICES[1]["id"]]
    assert len(queries) == 3


# --------------------------------------------------------------------------- secrets


def _provoke_all_errors(fake: FakeCartesia, client: CartesiaClient, slow_client: CartesiaClient) -> list[BaseException]:
    errors: list[BaseException] = []

    def attempt(fn) -> None:
        try:
            fn()
        except TTSError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected an error")

    say = lambda: client.synthesize("Hi", VOICE)  # noqa: E731
    for status in (400, 401, 402, 403, 404, 422):
        fake.script("error", status=status, message=f"key {KEY} refused")  # a server echoing the key
        attempt(say)
    fake.script("plain_text", status=401, text=f"Invalid API key {KEY}")
    attempt(say)
    fake.script("rate_limited", times=3, retry_after_ms="10")
    attempt(say)
    fake.script("error", times=3, status=500, message=f"crashed handling {KEY}")
    attempt(say)
    fake.script("html", times=3)
    attempt(say)
    for kind, params in [("truncated_wav", {}), ("wrong_sample_rate", {"sample_rate": 8000}), ("silent", {})]:
        fake.script(kind, **params)
        attempt(say)
    fake.script("slow", times=2, delay_s=5.0)
    attempt(lambda: slow_client.synthesize("Hi", VOICE))
    attempt(lambda: client.check_voice("00000000-0000-4000-8000-000000000000"))
    attempt(lambda: client.synthesize("Hi", VoiceSettings(language="en", speed=9)))
    attempt(lambda: CartesiaClient(client.config, KEY + "\n"))
    return errors


def test_api_key_never_leaks(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeCartesia("sk_car_the_real_key", echo_key_in_errors=True) as wrong_key_server:
        # This server rejects KEY and echoes it back in its 401 message.
        c = CartesiaClient(CartesiaConfig(base_url=wrong_key_server.base_url), KEY, sleep=SleepRecorder())
        with c, pytest.raises(CartesiaAuthError) as info:
            c.synthesize("Hi", VOICE)
        assert "***" in str(info.value)
        errors: list[BaseException] = [info.value]

    with FakeCartesia(KEY) as fake:
        config = CartesiaConfig(base_url=fake.base_url, max_retries=2)
        with (
            CartesiaClient(config, KEY, sleep=SleepRecorder()) as client,
            CartesiaClient(replace(config, read_timeout_s=0.2, max_retries=1), KEY, sleep=SleepRecorder()) as slow,
        ):
            errors += _provoke_all_errors(fake, client, slow)
            texts = [repr(client), repr(slow)]

        resource = CartesiaTTSResource(api_key=KEY, base_url=fake.base_url)
        texts += [repr(resource), str(resource), json.dumps(resource.describe())]
        assert resource.check_voice()["id"] == DEFAULT_VOICE_ID
        texts.append(repr(resource.client()))

    assert len(errors) == 18
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        texts += [repr(vars(exc))]
    texts.append(caplog.text)
    leaks = [t for t in texts if KEY in t]
    assert not leaks, leaks[:3]


def test_api_key_absent_from_dagster_run_failure(monkeypatch):
    with FakeCartesia("sk_car_the_real_key", echo_key_in_errors=True) as fake:
        monkeypatch.setenv("CARTESIA_API_KEY", KEY)

        @dg.asset
        def greeting(tts: TTSResource) -> None:
            tts.synthesize("Hello", VOICE)

        resource = CartesiaTTSResource(api_key=dg.EnvVar("CARTESIA_API_KEY"), base_url=fake.base_url)
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize([greeting], resources={"tts": resource}, instance=instance, raise_on_error=False)
        assert not result.success
        records = instance.all_logs(result.run_id)
        text = "\n".join(str(r.dagster_event) + str(r.user_message) for r in records)
        assert "Invalid API key" in text  # the failure is reported ...
        assert KEY not in text  # ... without the key


# --------------------------------------------------------------------------- resources


def test_engine_selection_rule(server):
    assert isinstance(tts_resource_from_env({}), OfflineTTSResource)
    assert isinstance(tts_resource_from_env({"TTS_ENGINE": ""}), OfflineTTSResource)
    assert isinstance(tts_resource_from_env({"TTS_ENGINE": "Offline"}), OfflineTTSResource)
    # The key alone never switches to the paid engine.
    assert isinstance(tts_resource_from_env({"CARTESIA_API_KEY": KEY}), OfflineTTSResource)
    chosen = tts_resource_from_env(
        {"TTS_ENGINE": "CARTESIA", "CARTESIA_API_KEY": KEY, "CARTESIA_BASE_URL": server.base_url,
         "CARTESIA_VOICE_ID": OTHER_VOICE_ID}
    )
    assert isinstance(chosen, CartesiaTTSResource)
    assert chosen.base_url == server.base_url and chosen.default_voice_id == OTHER_VOICE_ID
    assert KEY not in repr(chosen)  # an EnvVar, resolved only at run launch
    with pytest.raises(ValueError, match="elevenlabs"):
        tts_resource_from_env({"TTS_ENGINE": "elevenlabs"})
    with pytest.raises(ValueError, match="CARTESIA_API_KEY"):
        tts_resource_from_env({"TTS_ENGINE": "cartesia"})
    with pytest.raises(ValueError, match="default_voice_id"):
        tts_resource_from_env({"TTS_ENGINE": "cartesia", "CARTESIA_API_KEY": KEY, "CARTESIA_VOICE_ID": "sarah"})


def test_cartesia_resource_in_a_dagster_run(server, monkeypatch):
    monkeypatch.setenv("CARTESIA_API_KEY", KEY)

    @dg.asset
    def stem(tts: TTSResource) -> dg.MaterializeResult:
        client = tts.client()
        wavs = [tts.synthesize(t, VOICE) for t in ("one", "two")]
        assert tts.client() is client  # built once per resource instance
        contract = tts.contract(VOICE)
        return dg.MaterializeResult(
            metadata={**tts.describe(), "bytes": sum(map(len, wavs)), "signature": stem_signature("one", contract)}
        )

    resource = CartesiaTTSResource(api_key=dg.EnvVar("CARTESIA_API_KEY"), base_url=server.base_url)
    result = dg.materialize([stem], resources={"tts": resource}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [mat] = result.asset_materializations_for_node("stem")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["engine"] == "cartesia" and meta["model"] == "sonic-3" and meta["api_version"] == "2026-03-01"
    assert meta["base_url_host"] == "127.0.0.1" and KEY not in json.dumps(meta)
    assert len(server.tts_requests) == 2


def test_offline_resource():
    pytest.importorskip("hybrid_audio_dagster.core.tts.espeak")
    resource = OfflineTTSResource()
    assert resource.engine_name == "espeak-ng" and resource.max_concurrency == 2
    assert resource.describe()["engine"] == "espeak-ng"
    contract = resource.contract(VOICE)
    audio = load_wav(resource.synthesize("Hello there", VOICE))
    assert audio.sample_rate == contract.sample_rate
