"""Cartesia client under failure, against a real HTTP test double on 127.0.0.1: 429 and
Retry-After, 5xx with jittered backoff, typed final errors, timeouts, refused and dropped
connections, bad audio, and never more requests in flight than the cap.

No test waits for a real backoff: the client's ``sleep`` is a recorder, so retry-after
handling is asserted on the recorded delays. Nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import pickle
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from hybrid_audio_dagster.core.audio.wav import load_wav
from hybrid_audio_dagster.core.tts.base import TTSError
from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient
from hybrid_audio_dagster.core.tts.cartesia.config import CartesiaConfig
from hybrid_audio_dagster.core.tts.cartesia.errors import (
    CartesiaAPIError,
    CartesiaAuthError,
    CartesiaBadAudioError,
    CartesiaBillingError,
    CartesiaForbiddenError,
    CartesiaNotFoundError,
    CartesiaRequestError,
    CartesiaRetryExhaustedError,
)
from hybrid_audio_dagster.core.tts.cartesia.http import retry_after_seconds
from testkit.cartesia_server import FakeCartesia
from tests.support.cartesia import KEY, VOICE, SleepRecorder

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
    value = retry_after_seconds(httpx.Headers({"retry-after": format_datetime(when, usegmt=True)}))
    assert value is not None and 25 < value <= 30
    assert retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None


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
        config = CartesiaConfig(base_url=fake.base_url, max_concurrency=4, max_retries=20, backoff_base_s=0.01, backoff_max_s=0.1)
        with CartesiaClient(config, KEY) as client, ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda i: client.synthesize(f"Capped {i}", VOICE), range(8)))
        statuses = [r.status for r in fake.tts_requests]
        assert statuses.count(200) == 8 and set(statuses) <= {200, 429}
        assert fake.max_in_flight <= 4
        assert all(load_wav(w).frames > 0 for w in results)
