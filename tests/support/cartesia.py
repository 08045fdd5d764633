"""What the Cartesia tests share: the leak-canary key, voices, a sleep recorder, and the
fixtures ``server`` (the HTTP test double on 127.0.0.1) and ``make_client``."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hybrid_audio_dagster.core.tts.base import VoiceSettings
from hybrid_audio_dagster.core.tts.cartesia.client import CartesiaClient
from hybrid_audio_dagster.core.tts.cartesia.config import CartesiaConfig
from testkit.cartesia_server import FakeCartesia

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
