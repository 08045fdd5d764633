"""Typed errors of the Cartesia client. Messages never contain the API key."""

from __future__ import annotations

from hybrid_audio_dagster.core.tts.base import TTSError


class CartesiaError(TTSError):
    """Base class of every Cartesia client error. Messages never contain the API key."""


class CartesiaConfigError(CartesiaError, ValueError):
    """A setting or a request value is outside what the API documents; nothing was sent."""


class CartesiaAPIError(CartesiaError):
    """The API answered with an error status that is not worth retrying.

    Attributes mirror the API's JSON error object (``error_code``, ``title``, ``message``,
    ``request_id``); for legacy plain-text bodies only ``message`` is set.
    """

    def __init__(
        self,
        text: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        title: str | None = None,
        api_message: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.error_code = error_code
        self.title = title
        self.api_message = api_message
        self.request_id = request_id
        self.method = method
        self.path = path


class CartesiaRequestError(CartesiaAPIError):
    """400/422 (or another unexpected 4xx): the API refused the request as malformed."""


class CartesiaAuthError(CartesiaAPIError):
    """401: the API key is missing, malformed, revoked or for another environment."""


class CartesiaForbiddenError(CartesiaAuthError):
    """403: the key is valid but may not use this model, voice or feature."""


class CartesiaBillingError(CartesiaAPIError):
    """402: out of credits or the plan does not allow the request (not retried: costs money)."""


class CartesiaNotFoundError(CartesiaAPIError):
    """404: the endpoint or the referenced object (voice, dictionary) does not exist."""


class CartesiaVoiceNotFoundError(CartesiaNotFoundError):
    """The voice id is unknown to this account (``check_voice``)."""


class CartesiaRetryExhaustedError(CartesiaError):
    """Every attempt failed with a retryable error (429, 5xx, timeout, connection)."""

    def __init__(
        self,
        text: str,
        *,
        attempts: int = 0,
        last_status: int | None = None,
        last_error_code: str | None = None,
        last_error: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(text)
        self.attempts = attempts
        self.last_status = last_status
        self.last_error_code = last_error_code
        self.last_error = last_error
        self.request_id = request_id


class CartesiaBadAudioError(CartesiaError):
    """A 200 answer whose body is not the audio that was asked for. Never returned as a stem.

    Not retried: the request was billed and a well-formed request answered with malformed
    audio is a server defect that repeating it is unlikely to fix (a connection dropped
    mid-body is a transport error instead, and that one is retried).
    """

    def __init__(self, text: str, *, request_id: str | None = None) -> None:
        super().__init__(text)
        self.request_id = request_id


STATUS_ERRORS: dict[int, type[CartesiaAPIError]] = {
    400: CartesiaRequestError,
    401: CartesiaAuthError,
    402: CartesiaBillingError,
    403: CartesiaForbiddenError,
    404: CartesiaNotFoundError,
    422: CartesiaRequestError,
}
