"""Reading Cartesia's HTTP answers: content types, request ids, error bodies, retry-after."""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

_HTML_TITLE_RE = re.compile(r"<title[^>]*>(?P<title>.*?)</title>", re.I | re.S)


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    headers: httpx.Headers
    body: bytes


def content_type(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def header_request_id(headers: httpx.Headers) -> str | None:
    for name in ("x-request-id", "request-id", "cartesia-request-id"):
        if headers.get(name):
            return headers[name][:100]
    return None


def parse_error_body(answer: HTTPAnswer) -> tuple[str | None, str | None, str, str | None]:
    """(error_code, title, message, request_id) from a JSON, HTML or plain-text error body."""
    ctype = content_type(answer.headers)
    text = answer.body.decode("utf-8", errors="replace").strip()
    request_id = header_request_id(answer.headers)
    if "json" in ctype or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error") if isinstance(data.get("error"), dict) else data
            code = inner.get("error_code") or inner.get("code")
            title = inner.get("title")
            message = inner.get("message") or inner.get("detail") or inner.get("error") or title
            rid = inner.get("request_id") or request_id
            return (
                str(code) if code else None,
                str(title) if title else None,
                _shorten(str(message) if message else text),
                str(rid) if rid else None,
            )
    if "html" in ctype or text[:15].lower().startswith(("<!doctype", "<html")):
        m = _HTML_TITLE_RE.search(text)
        title = " ".join(m["title"].split()) if m else None
        summary = f"HTML error page ({ctype or 'no content type'})" + (f": {title}" if title else "")
        return None, title, _shorten(summary), request_id
    # Legacy API versions answer errors as plain text.
    return None, None, _shorten(text) or f"empty {answer.status} body", request_id


def _shorten(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """``retry-after-ms`` (ms), else ``retry-after`` (seconds or an HTTP date), else None."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
