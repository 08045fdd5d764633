"""A real HTTP test double of the Cartesia TTS API, served on 127.0.0.1.

It implements what the client uses, as documented (and as SDK ``cartesia==4.2.0`` sends it):

* ``POST /tts/bytes`` — checks ``Authorization: Bearer <key>``, a known ``Cartesia-Version``
  and the JSON body (fields, types, documented ranges); answers a real WAV file: a tone with
  a little noise whose length grows with the transcript (``0.15 s + 0.06 s/char``), at the
  requested sample rate and encoding, deterministic per transcript.
* ``GET /voices`` (``limit``, ``starting_after`` cursor paging) and ``GET /voices/{id}``.
* ``/pronunciation-dicts/`` (create, list, get, update, delete) and ``pronunciation_dict_id``
  on ``/tts/bytes``: see testkit/cartesia_dicts.py (``FakeCartesia.dicts``).

Errors look like the API's (>= 2026-03-01): ``{"error_code", "title", "message",
"request_id"}`` with 400 for malformed requests and 422 for out-of-range values.

Every request is recorded (headers with the ``Authorization`` value replaced by a verdict,
body bytes and parsed JSON, the status answered) and the peak number of ``/tts/bytes``
requests in flight is tracked. Tests script the next answers of ``/tts/bytes`` with
:meth:`FakeCartesia.script` (failures, slowness, malformed audio); ``latency_s`` delays every
successful synthesis and ``concurrency_cap`` answers 429 ``concurrency_limited`` past the cap,
like the real plan limits.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from testkit.cartesia_dicts import DictError, FakeDicts

KNOWN_VERSIONS = frozenset({"2024-06-10", "2024-11-13", "2025-04-16", "2026-03-01", "2026-08-14"})
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
ENCODINGS = frozenset({"pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw"})
LANGUAGES = frozenset(
    "en fr de es pt zh ja hi it ko nl pl ru sv tr tl bg ro ar cs el fi hr ms sk da ta uk hu "
    "no vi bn th he ka id te gu kn ml mr pa or ur".split()
)
BODY_FIELDS = frozenset(
    {
        "model_id",
        "transcript",
        "voice",
        "output_format",
        "language",
        "locale",
        "generation_config",
        "pronunciation_dict_id",
        "normalization",
        "save",
        "speed",
    }
)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MODEL_RE = re.compile(r"^sonic(-\d+(\.\d+)?)?(-\d{4}-\d{2}-\d{2})?$|^sonic-(latest|turbo|english|multilingual)$")

SECONDS_BASE = 0.15
SECONDS_PER_CHAR = 0.06

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
    "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)

DEFAULT_VOICES: tuple[dict[str, Any], ...] = tuple(
    {
        "id": vid,
        "name": name,
        "description": f"{name}, a test voice",
        "language": lang,
        "is_owner": False,
        "access": "public",
        "visibility": "all",
        "created_at": "2025-01-01T00:00:00Z",
        "tagline": "",
        "gender": gender,
        "locales": [{"locale": locale, "is_native": True}],
    }
    for vid, name, lang, locale, gender in [
        ("694f9389-aac1-45b6-b726-9d9369183238", "Sarah", "en", "en-US", "feminine"),
        ("a0e99841-438c-4a64-b679-ae501e7d6091", "Barbershop Man", "en", "en-US", "masculine"),
        ("6ccbfb76-1fc6-48f7-b71d-91ac6298247b", "Tessa", "en", "en-US", "feminine"),
        ("2695b6b5-5543-4be1-96d9-3967fb5e7fec", "Mateo", "es", "es-MX", "masculine"),
        ("5c3c89e5-535f-43ef-b14d-f8ffe148c1f0", "Lucia", "es", "es-ES", "feminine"),
    ]
)


# --------------------------------------------------------------------------- audio


def tone_seconds(transcript: str) -> float:
    """Duration of the fake rendering of ``transcript``."""
    return SECONDS_BASE + SECONDS_PER_CHAR * len(transcript)


def synth_samples(transcript: str, sample_rate: int, seconds: float | None = None) -> np.ndarray:
    """Deterministic float64 samples in [-0.5, 0.5]: a two-partial tone plus a little noise."""
    digest = hashlib.sha256(transcript.encode("utf-8")).digest()
    seed = int.from_bytes(digest[:8], "little")
    frames = max(1, int(round((seconds if seconds is not None else tone_seconds(transcript)) * sample_rate)))
    t = np.arange(frames) / sample_rate
    f0 = 110.0 + seed % 220
    x = 0.30 * np.sin(2 * np.pi * f0 * t) + 0.10 * np.sin(2 * np.pi * 2 * f0 * t + 1.0)
    x += 0.02 * np.random.default_rng(seed).standard_normal(frames)
    fade = min(frames // 2, int(0.01 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    return x


def _mulaw(x: np.ndarray) -> bytes:
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    return (~((y + 1) / 2 * 255).astype(np.uint8)).astype(np.uint8).tobytes()


def _alaw(x: np.ndarray) -> bytes:
    a = 87.6
    ax = np.minimum(np.abs(x), 1.0)
    y = np.where(ax < 1 / a, a * ax / (1 + np.log(a)), (1 + np.log(np.maximum(a * ax, 1e-12))) / (1 + np.log(a)))
    return ((np.sign(x) * y + 1) / 2 * 255).astype(np.uint8).__xor__(0x55).tobytes()


def encode_pcm(x: np.ndarray, encoding: str) -> tuple[bytes, int, int]:
    """(frame bytes, WAV format tag, bits per sample) for ``encoding``."""
    if encoding == "pcm_s16le":
        return np.round(x * 32767).astype("<i2").tobytes(), 1, 16
    if encoding == "pcm_f32le":
        return x.astype("<f4").tobytes(), 3, 32
    if encoding == "pcm_mulaw":
        return _mulaw(x), 7, 8
    if encoding == "pcm_alaw":
        return _alaw(x), 6, 8
    raise ValueError(encoding)


def build_wav(data: bytes, sample_rate: int, tag: int, bits: int, *, streaming_sizes: bool = False) -> bytes:
    """A RIFF/WAVE file written independently of the project's own encoder."""
    block = bits // 8
    fmt = struct.pack("<HHIIHH", tag, 1, sample_rate, sample_rate * block, block, bits)
    extra = b""
    if tag != 1:  # non-PCM formats carry cbSize and a fact chunk
        fmt += struct.pack("<H", 0)
        extra = b"fact" + struct.pack("<II", 4, len(data) // block)
    pad = b"\x00" if len(data) & 1 else b""
    data_size = 0xFFFFFFFF if streaming_sizes else len(data)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", data_size)
    riff = 0xFFFFFFFF if streaming_sizes else len(body) + len(data) + len(pad)
    return b"RIFF" + struct.pack("<I", riff) + body + data + (b"" if streaming_sizes else pad)


def fake_wav(
    transcript: str,
    sample_rate: int,
    encoding: str,
    *,
    seconds: float | None = None,
    silent: bool = False,
    streaming_sizes: bool = False,
) -> bytes:
    """The WAV the fake answers for ``transcript`` (tests use it as the expected audio)."""
    x = synth_samples(transcript, sample_rate, seconds)
    if silent:
        x = np.zeros_like(x)
    data, tag, bits = encode_pcm(x, encoding)
    return build_wav(data, sample_rate, tag, bits, streaming_sizes=streaming_sizes)


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    """One request as the server saw it. The Authorization value is never stored."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    auth_ok: bool
    body: bytes
    json: Any = None
    status: int | None = None  # filled in when answered (None: the client had gone)
    response_json: Any = None  # the JSON answered (errors, voices), for assertions


@dataclass
class Scripted:
    kind: str
    remaining: int | None  # None: forever
    params: dict[str, Any] = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


# --------------------------------------------------------------------------- server


class FakeCartesia:
    """The fake API. Use as a context manager or call :meth:`start` / :meth:`stop`.

    Args:
        api_key: The only key accepted.
        latency_s: Delay before each successful ``/tts/bytes`` answer.
        concurrency_cap: Answer 429 ``concurrency_limited`` when more ``/tts/bytes`` requests
            than this are in flight (None: no cap).
        echo_key_in_errors: Put the presented key into 401 messages (some servers do; the
            client must redact it).
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        latency_s: float = 0.0,
        concurrency_cap: int | None = None,
        voices: tuple[dict[str, Any], ...] = DEFAULT_VOICES,
        echo_key_in_errors: bool = False,
    ) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.concurrency_cap = concurrency_cap
        self.echo_key_in_errors = echo_key_in_errors
        self.voices = {v["id"]: dict(v) for v in voices}
        self.dicts = FakeDicts()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeCartesia:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in latency/slow answers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeCartesia:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ scripting

    def script(self, kind: str, times: int | None = 1, **params: Any) -> FakeCartesia:
        """Queue ``times`` answers of ``kind`` for the next valid ``/tts/bytes`` requests.

        Kinds and their parameters:

        * ``rate_limited`` — 429; ``retry_after`` (seconds header), ``retry_after_ms``,
          ``error_code`` (default ``rate_limited``).
        * ``error`` — JSON error; ``status``, ``error_code``, ``message``.
        * ``html`` — ``status`` (default 502) with an HTML page.
        * ``plain_text`` — ``status`` with a legacy text/plain ``text`` body.
        * ``slow`` — answer normally after ``delay_s``.
        * ``truncated_wav`` — 200 with a WAV whose data chunk is cut (HTTP body complete).
        * ``drop_connection`` — 200 headers then half the body, then the socket is closed.
        * ``wrong_sample_rate`` — 200 WAV at ``sample_rate``.
        * ``wrong_encoding`` — 200 WAV in ``encoding``.
        * ``silent`` — 200 WAV of zeros.
        * ``long_audio`` — 200 WAV of ``seconds``.
        * ``content_type`` — 200 WAV labelled ``content_type``.
        * ``streaming_header`` — 200 WAV whose RIFF/data sizes are 0xFFFFFFFF.
        """
        with self._lock:
            self._script.append(Scripted(kind, times, params))
        return self

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.max_in_flight = 0

    @property
    def tts_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/tts/bytes"]

    def _next_scripted(self) -> Scripted | None:
        with self._lock:
            if not self._script:
                return None
            entry = self._script[0]
            if entry.remaining is not None:
                entry.remaining -= 1
                if entry.remaining <= 0:
                    self._script.popleft()
            return entry

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _enter(self) -> int:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.in_flight

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)


def _check_tts_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """Validate a ``/tts/bytes`` body like the API: 400 for structure, 422 for values."""
    if not content_type.startswith("application/json"):
        raise _ApiError(400, "invalid_request", f"Content-Type must be application/json, got {content_type!r}")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _ApiError(400, "invalid_request", f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise _ApiError(400, "invalid_request", "body must be a JSON object")
    unknown = set(body) - BODY_FIELDS
    if unknown:
        raise _ApiError(400, "invalid_request", f"unknown fields: {sorted(unknown)}")
    for name in ("model_id", "transcript", "voice", "output_format"):
        if name not in body:
            raise _ApiError(400, "invalid_request", f"missing required field {name!r}")
    model = body["model_id"]
    if not isinstance(model, str) or not MODEL_RE.match(model):
        raise _ApiError(400, "invalid_request", f"unknown model_id {model!r}")
    transcript = body["transcript"]
    if not isinstance(transcript, str):
        raise _ApiError(400, "invalid_request", "transcript must be a string")
    if not transcript.strip():
        raise _ApiError(422, "invalid_transcript", "transcript must not be empty")
    voice = body["voice"]
    voice_id = voice if isinstance(voice, str) else voice.get("id") if isinstance(voice, dict) else None
    if isinstance(voice, dict) and voice.get("mode", "id") != "id":
        raise _ApiError(400, "invalid_request", "voice.mode must be 'id' (embeddings are not accepted)")
    if not isinstance(voice_id, str) or not UUID_RE.match(voice_id):
        raise _ApiError(400, "invalid_request", f"voice id must be a UUID, got {voice_id!r}")
    fmt = body["output_format"]
    if not isinstance(fmt, dict):
        raise _ApiError(400, "invalid_request", "output_format must be an object")
    container = fmt.get("container")
    if container not in ("wav", "raw", "mp3"):
        raise _ApiError(400, "invalid_request", f"output_format.container must be wav, raw or mp3, got {container!r}")
    if container == "mp3":
        raise _ApiError(422, "unsupported_output_format", "this fake serves only wav and raw")
    if fmt.get("encoding") not in ENCODINGS:
        raise _ApiError(422, "invalid_output_format", f"output_format.encoding {fmt.get('encoding')!r} is not supported")
    sr = fmt.get("sample_rate")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr not in SAMPLE_RATES:
        raise _ApiError(422, "invalid_output_format", f"output_format.sample_rate {sr!r} is not supported")
    extra = set(fmt) - {"container", "encoding", "sample_rate"}
    if extra:
        raise _ApiError(400, "invalid_request", f"unknown output_format fields: {sorted(extra)}")
    if "language" in body and "locale" in body:
        raise _ApiError(400, "invalid_request", "set language or locale, never both")
    if body.get("language") is not None and body["language"] not in LANGUAGES:
        raise _ApiError(422, "unsupported_language", f"language {body['language']!r} is not supported")
    if body.get("locale") is not None:
        loc = body["locale"]
        if not isinstance(loc, str) or loc.split("-", 1)[0] not in LANGUAGES:
            raise _ApiError(422, "unsupported_language", f"locale {loc!r} is not supported")
    gen = body.get("generation_config")
    if gen is not None:
        if not isinstance(gen, dict) or set(gen) - {"speed", "volume", "emotion"}:
            raise _ApiError(400, "invalid_request", "generation_config accepts speed, volume and emotion")
        for name, lo, hi in (("speed", 0.6, 1.5), ("volume", 0.5, 2.0)):
            if name in gen:
                v = gen[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise _ApiError(400, "invalid_request", f"generation_config.{name} must be a number")
                if not lo <= v <= hi:
                    raise _ApiError(422, "invalid_generation_config", f"generation_config.{name} must be in [{lo}, {hi}]")
        if "emotion" in gen and not isinstance(gen["emotion"], str):
            raise _ApiError(400, "invalid_request", "generation_config.emotion must be a string")
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API (httpx pools connections)
    server_version = "FakeCartesia/1.0"

    @property
    def fake(self) -> FakeCartesia:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: pytest output stays readable

    # ------------------------------------------------------------------ plumbing

    def _send(self, rec: RecordedRequest, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        rec.status = status
        if content_type == "application/json":
            rec.response_json = json.loads(body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            rec.status = None  # the client had already gone (e.g. it timed out)
            self.close_connection = True

    def _error(self, rec: RecordedRequest, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        payload = {"error_code": code, "title": _TITLES.get(status, "Error"), "message": message, "request_id": str(uuid.uuid4())}
        self._send(rec, status, json.dumps(payload).encode(), "application/json", headers)

    def _read(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        auth_ok = auth == f"Bearer {self.fake.api_key}"
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "Bearer <valid key>" if auth_ok else "<invalid>"
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        rec = RecordedRequest(self.command, parts.path, parse_qs(parts.query), headers, auth_ok, raw, parsed)
        self.fake._record(rec)
        return rec

    def _check_common(self, rec: RecordedRequest) -> None:
        if not rec.auth_ok:
            presented = self.headers.get("Authorization", "")
            msg = "Invalid API key"
            if self.fake.echo_key_in_errors and presented:
                msg += f": {presented.removeprefix('Bearer ')!s}"
            raise _ApiError(401, "unauthorized", msg)
        version = self.headers.get("Cartesia-Version")
        if not version:
            raise _ApiError(400, "missing_version", "The Cartesia-Version header is required")
        if version not in KNOWN_VERSIONS:
            raise _ApiError(400, "invalid_version", f"Unknown Cartesia-Version {version!r}")

    # ------------------------------------------------------------------ routes

    def _dicts(self, rec: RecordedRequest) -> None:
        try:
            self._check_common(rec)
            if rec.body and rec.json is None:
                raise _ApiError(400, "invalid_request", "invalid JSON body")
            status, payload = self.fake.dicts.handle(self.command, rec.path, rec.query, rec.json)
        except _ApiError as e:
            self._error(rec, e.status, e.code, e.message)
        except DictError as e:
            self._error(rec, e.status, e.code, e.message)
        else:
            self._send(rec, status, json.dumps(payload).encode(), "application/json")

    def do_PATCH(self) -> None:  # noqa: N802 - stdlib naming
        rec = self._read()
        if rec.path.startswith("/pronunciation-dicts"):
            self._dicts(rec)
        else:
            self._error(rec, 404, "not_found", f"No route for PATCH {rec.path}")

    def do_DELETE(self) -> None:  # noqa: N802 - stdlib naming
        self.do_PATCH()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        rec = self._read()
        if rec.path.startswith("/pronunciation-dicts"):
            self._dicts(rec)
            return
        try:
            self._check_common(rec)
            if rec.path == "/voices":
                self._list_voices(rec)
            elif rec.path.startswith("/voices/"):
                vid = rec.path.removeprefix("/voices/")
                voice = self.fake.voices.get(vid)
                if voice is None:
                    raise _ApiError(404, "not_found", f"Voice {vid} not found")
                self._send(rec, 200, json.dumps(voice).encode(), "application/json")
            else:
                raise _ApiError(404, "not_found", f"No route for GET {rec.path}")
        except _ApiError as e:
            self._error(rec, e.status, e.code, e.message)

    def _list_voices(self, rec: RecordedRequest) -> None:
        try:
            limit = int(rec.query.get("limit", ["10"])[0])
        except ValueError:
            raise _ApiError(400, "invalid_request", "limit must be an integer") from None
        if not 1 <= limit <= 100:
            raise _ApiError(400, "invalid_request", "limit must be between 1 and 100")
        ids = list(self.fake.voices)
        start = 0
        after = rec.query.get("starting_after", [None])[0]
        if after is not None:
            if after not in self.fake.voices:
                raise _ApiError(400, "invalid_request", f"unknown cursor {after!r}")
            start = ids.index(after) + 1
        page = [self.fake.voices[i] for i in ids[start : start + limit]]
        has_more = start + limit < len(ids)
        self._send(rec, 200, json.dumps({"data": page, "has_more": has_more}).encode(), "application/json")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        rec = self._read()
        if rec.path.startswith("/pronunciation-dicts"):
            self._dicts(rec)
            return
        if rec.path != "/tts/bytes":
            self._error(rec, 404, "not_found", f"No route for POST {rec.path}")
            return
        fake = self.fake
        count = fake._enter()
        try:
            try:
                self._check_common(rec)
                if fake.concurrency_cap is not None and count > fake.concurrency_cap:
                    raise _ApiError(
                        429,
                        "concurrency_limited",
                        f"Concurrency limit of {fake.concurrency_cap} exceeded for your plan",
                    )
                body = _check_tts_body(rec.body, self.headers.get("Content-Type", ""))
                body["transcript"] = fake.dicts.apply(body["transcript"], body.get("pronunciation_dict_id"))
            except _ApiError as e:
                self._error(rec, e.status, e.code, e.message)
                return
            except DictError as e:
                self._error(rec, e.status, e.code, e.message)
                return
            self._tts(rec, body, fake._next_scripted())
        finally:
            fake._leave()

    def _tts(self, rec: RecordedRequest, body: dict[str, Any], scripted: Scripted | None) -> None:
        fake = self.fake
        fmt = body["output_format"]
        transcript, sr, enc = body["transcript"], fmt["sample_rate"], fmt["encoding"]
        kind = scripted.kind if scripted else "ok"
        p = scripted.params if scripted else {}
        ctype = "audio/wav" if fmt["container"] == "wav" else "application/octet-stream"

        if kind == "rate_limited":
            headers = {}
            if p.get("retry_after") is not None:
                headers["Retry-After"] = str(p["retry_after"])
            if p.get("retry_after_ms") is not None:
                headers["Retry-After-Ms"] = str(p["retry_after_ms"])
            self._error(rec, 429, p.get("error_code", "rate_limited"), "Too many requests", headers)
            return
        if kind == "error":
            status = int(p["status"])
            self._error(rec, status, p.get("error_code", "error"), p.get("message", _TITLES.get(status, "error")))
            return
        if kind == "html":
            self._send(rec, int(p.get("status", 502)), HTML_502.encode(), "text/html; charset=utf-8")
            return
        if kind == "plain_text":
            self._send(rec, int(p["status"]), p["text"].encode(), "text/plain; charset=utf-8")
            return
        if kind == "slow":
            fake._wait(float(p["delay_s"]))
        else:
            fake._wait(fake.latency_s)

        wav_kwargs: dict[str, Any] = {}
        if kind == "wrong_sample_rate":
            sr = int(p["sample_rate"])
        elif kind == "wrong_encoding":
            enc = p["encoding"]
        elif kind == "silent":
            wav_kwargs["silent"] = True
        elif kind == "long_audio":
            wav_kwargs["seconds"] = float(p["seconds"])
        elif kind == "streaming_header":
            wav_kwargs["streaming_sizes"] = True
        elif kind == "content_type":
            ctype = p["content_type"]
        if fmt["container"] == "raw":
            audio = encode_pcm(synth_samples(transcript, sr), enc)[0]
        else:
            audio = fake_wav(transcript, sr, enc, **wav_kwargs)

        if kind == "truncated_wav":
            audio = audio[: len(audio) // 2]  # the HTTP body is complete; the WAV is not
        if kind == "drop_connection":
            rec.status = 200
            try:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio[: len(audio) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        self._send(rec, 200, audio, ctype)
