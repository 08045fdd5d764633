"""Voices: ``GET /voices/{id}`` and ``GET /voices`` (cursor paging), as methods of the client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hybrid_audio_dagster.core.tts.cartesia.config import ERROR_BODY_LIMIT, check_voice_id
from hybrid_audio_dagster.core.tts.cartesia.errors import (
    CartesiaConfigError,
    CartesiaNotFoundError,
    CartesiaRequestError,
    CartesiaVoiceNotFoundError,
)


class VoicesMixin:
    """The voice lookups of :class:`~.client.CartesiaClient` (uses its ``_call`` / ``_json``)."""

    def check_voice(self, voice_id: str | None = None) -> dict[str, Any]:
        """Fetch ``GET /voices/{id}`` (default voice if None) and return the voice object.

        Raises:
            CartesiaVoiceNotFoundError: the id is unknown to this account.
        """
        vid = check_voice_id(voice_id if voice_id is not None else self.config.default_voice_id)
        try:
            answer = self._call("GET", f"/voices/{vid}", accept="application/json", max_body=ERROR_BODY_LIMIT * 16)
        except CartesiaNotFoundError as exc:
            raise CartesiaVoiceNotFoundError(
                f"Cartesia voice {vid} not found for this API key ({exc.api_message or 'no details'}; request_id={exc.request_id})",
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
            page = self._json(self._call("GET", "/voices", params=params, accept="application/json", max_body=ERROR_BODY_LIMIT * 64))
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise CartesiaRequestError("GET /voices returned no 'data' list")
            yield from data
            if not data or not page.get("has_more", len(data) == page_size):
                return
            after = data[-1]["id"]
