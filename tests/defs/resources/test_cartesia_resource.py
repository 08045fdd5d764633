"""The Cartesia key never leaks (logs, errors, Dagster run storage), and the TTS resources
(engine selection, a Dagster run against the HTTP test double on 127.0.0.1, offline)."""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import replace

import dagster as dg
import pytest

from hybrid_audio_dagster.core.audio.wav import load_wav
from hybrid_audio_dagster.core.stems.identity import stem_signature
from hybrid_audio_dagster.core.tts.base import TTSError, VoiceSettings
from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient
from hybrid_audio_dagster.core.tts.cartesia.config import DEFAULT_VOICE_ID, CartesiaConfig
from hybrid_audio_dagster.core.tts.cartesia.errors import CartesiaAuthError
from hybrid_audio_dagster.defs.resources.tts import (
    CartesiaTTSResource,
    OfflineTTSResource,
    TTSResource,
    tts_resource_from_env,
)
from testkit.cartesia_server import FakeCartesia
from tests.support.cartesia import KEY, OTHER_VOICE_ID, VOICE, SleepRecorder

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
        {"TTS_ENGINE": "CARTESIA", "CARTESIA_API_KEY": KEY, "CARTESIA_BASE_URL": server.base_url, "CARTESIA_VOICE_ID": OTHER_VOICE_ID}
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
        return dg.MaterializeResult(metadata={**tts.describe(), "bytes": sum(map(len, wavs)), "signature": stem_signature("one", contract)})

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
