"""Dagster concurrency pools, declared once (``deploy/dagster.yaml`` sets their limits)."""

TTS_POOL = "tts"  # every step that may call a TTS engine
MESSAGES_POOL = "messages"  # one messages step at a time: two runs must never rewrite one manifest
