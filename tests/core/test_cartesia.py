"""Cartesia client against a real HTTP test double on 127.0.0.1: the request is the
documented one (and the official SDK's), validation before any request, the stem contract,
voices.

Retries, bad answers and concurrency are ``test_cartesia_resilience.py``; secrets and the
Dagster resources ``test_cartesia_dagster.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hybrid_audio_dagster.core.audio.wav import load_wav, parse_wav
from hybrid_audio_dagster.core.stems.identity import stem_signature
from hybrid_audio_dagster.core.tts.base import TTSEngine, VoiceSettings
from hybrid_audio_dagster.core.tts.cartesia.config import DEFAULT_VOICE_ID, CartesiaConfig, plausible_duration_range
from hybrid_audio_dagster.core.tts.cartesia.errors import CartesiaConfigError, CartesiaNotFoundError, CartesiaVoiceNotFoundError
from testkit.cartesia_server import DEFAULT_VOICES, fake_wav, tone_seconds
from tests.support.cartesia import KEY, OTHER_VOICE_ID, VOICE

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
    text = 'Bonjour, ¿qué tal? <break time="300ms"/> Hello!'
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
