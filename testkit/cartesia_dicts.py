"""Pronunciation dictionaries for the fake Cartesia server (testkit/cartesia_server.py).

As documented for API 2026-03-01:

* ``POST /pronunciation-dicts/`` ``{name, items?}`` → the dictionary object
  ``{id, name, owner_id, pinned, items, created_at}``;
* ``GET /pronunciation-dicts/`` (``limit`` 1-100, ``starting_after`` / ``ending_before``
  cursors) → ``{data, has_more, next_page}``;
* ``GET`` / ``PATCH`` (``name?``, ``items?``: the new list) / ``DELETE
  /pronunciation-dicts/{id}``; an unknown id is 404;
* an item is ``{text, pronunciation}`` (the deprecated ``alias`` is accepted instead, and
  ``case_sensitive``); anything else is 400, an empty text or pronunciation 422;
* ``/tts/bytes`` with ``pronunciation_dict_id`` replaces each item's text in the transcript
  before synthesis ("a simple search and replace"), case-sensitively, except that a
  lower-case entry also matches its capitalised form; an unknown id is 404. The transcript
  as the model saw it is kept (``FakeDicts.spoken``), and the audio is made from it.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

ITEM_FIELDS = frozenset({"text", "pronunciation", "alias", "case_sensitive"})


class DictError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _check_items(items: object) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise DictError(400, "invalid_request", "items must be a list")
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - ITEM_FIELDS or "text" not in item:
            raise DictError(400, "invalid_request", f"items[{n}] must be an object with text and pronunciation")
        pron = item.get("pronunciation", item.get("alias"))
        if not isinstance(item["text"], str) or not isinstance(pron, str):
            raise DictError(400, "invalid_request", f"items[{n}]: text and pronunciation must be strings")
        if not item["text"].strip() or not pron.strip():
            raise DictError(422, "invalid_pronunciation_dict", f"items[{n}]: text and pronunciation must not be empty")
        out.append(
            {
                "text": item["text"],
                "pronunciation": pron,
                **({"case_sensitive": item["case_sensitive"]} if "case_sensitive" in item else {}),
            }
        )
    return out


class FakeDicts:
    """The dictionaries of one fake account (thread-safe)."""

    def __init__(self) -> None:
        self.dicts: dict[str, dict[str, Any]] = {}
        self.spoken: list[str] = []  # transcripts after dictionary replacement, per /tts/bytes
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        rest = path.removeprefix("/pronunciation-dicts").strip("/")
        with self._lock:
            if not rest:
                if method == "GET":
                    return 200, self._list(query)
                if method == "POST":
                    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
                        raise DictError(400, "invalid_request", "name is required")
                    if set(body) - {"name", "items", "description"}:
                        raise DictError(400, "invalid_request", f"unknown fields: {sorted(set(body) - {'name', 'items', 'description'})}")
                    d = {
                        "id": f"pdict_{uuid.uuid4().hex[:20]}",
                        "name": body["name"],
                        "owner_id": "user_fake",
                        "pinned": False,
                        "items": _check_items(body.get("items") or []),
                        "created_at": datetime.now(UTC).isoformat(),
                    }
                    self.dicts[d["id"]] = d
                    return 200, d
                raise DictError(405, "method_not_allowed", f"{method} {path}")
            d = self.dicts.get(rest)
            if d is None:
                raise DictError(404, "not_found", f"Pronunciation dictionary {rest} not found")
            if method == "GET":
                return 200, d
            if method == "PATCH":
                if not isinstance(body, dict) or set(body) - {"name", "items", "description"}:
                    raise DictError(400, "invalid_request", "PATCH accepts name and items")
                if body.get("name") is not None:
                    d["name"] = body["name"]
                if body.get("items") is not None:
                    d["items"] = _check_items(body["items"])
                return 200, d
            if method == "DELETE":
                del self.dicts[rest]
                return 200, {"id": rest}
            raise DictError(405, "method_not_allowed", f"{method} {path}")

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", ["10"])[0])
        except ValueError:
            raise DictError(400, "invalid_request", "limit must be an integer") from None
        if not 1 <= limit <= 100:
            raise DictError(400, "invalid_request", "limit must be between 1 and 100")
        ids = list(self.dicts)
        start = 0
        after = query.get("starting_after", [None])[0]
        if after is not None:
            if after not in self.dicts:
                raise DictError(400, "invalid_request", f"unknown cursor {after!r}")
            start = ids.index(after) + 1
        page = [self.dicts[i] for i in ids[start : start + limit]]
        has_more = start + limit < len(ids)
        return {"data": page, "has_more": has_more, "next_page": page[-1]["id"] if has_more else None}

    def apply(self, transcript: str, dict_id: str | None) -> str:
        """The transcript the model speaks (404 for an unknown dictionary)."""
        if dict_id is None:
            return transcript
        with self._lock:
            d = self.dicts.get(dict_id)
            if d is None:
                raise DictError(404, "not_found", f"Pronunciation dictionary {dict_id} not found")
            items = sorted(d["items"], key=lambda i: -len(i["text"]))
        for item in items:
            text = item["text"]
            forms = {text} | ({text[:1].upper() + text[1:]} if text[:1].islower() and not item.get("case_sensitive") else set())
            pattern = "|".join(rf"(?<!\w){re.escape(f)}(?!\w)" for f in sorted(forms, key=len, reverse=True))
            transcript = re.sub(pattern, lambda _m: item["pronunciation"], transcript)  # noqa: B023  (used at once)
        with self._lock:
            self.spoken.append(transcript)
        return transcript
