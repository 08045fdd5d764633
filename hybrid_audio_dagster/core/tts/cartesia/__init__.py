"""Cartesia Sonic-3 over HTTP: a thread-safe :class:`~.base.TTSEngine` (no Dagster import).

One :class:`CartesiaClient` wraps one ``httpx.Client`` (a thread-safe connection pool) and
one ``threading.BoundedSemaphore`` so the process never has more requests in flight than
the plan allows. Every setting is checked against the documented ranges *before* a request
is sent, because every request is billed; every answer is checked (status, content type,
WAV format, duration) before it is returned, because a bad stem would be cached and reused.

Errors are typed (:class:`CartesiaError` and subclasses of it). 400/401/402/403/404/422 are
final; 408/409/429/5xx, timeouts and connection errors are retried with exponential
backoff and full jitter, honouring ``retry-after-ms`` / ``retry-after``. The API key is
only ever placed in the ``Authorization`` header of a request: it is redacted from every
message built from a server answer, and never part of a repr.

API facts (checked against the official SDK ``cartesia==4.2.0``):
``POST /tts/bytes`` with ``Authorization: Bearer <key>`` and ``Cartesia-Version: <date>``;
``GET /voices/{id}``; ``GET /voices?limit=&starting_after=`` (cursor paging).
"""
