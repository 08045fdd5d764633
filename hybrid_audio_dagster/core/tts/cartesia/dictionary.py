"""The project's Cartesia pronunciation dictionary, kept in step through the API.

Endpoints (Cartesia API 2026-03-01): ``GET /pronunciation-dicts/`` (cursor paging:
``limit``, ``starting_after``; answer ``{data, has_more, next_page}``), ``POST
/pronunciation-dicts/`` with ``{name, items}``, ``GET`` / ``PATCH /pronunciation-dicts/{id}``
(``PATCH`` replaces ``items``). An item is ``{text, pronunciation}``: a "sounds-like"
respelling or IPA written ``<<p|h|o|n|e|m|e|s>>``; the deprecated ``alias`` is read, never
written. A dictionary is found by its name (``pronunciation_dict_name``, default
``hybrid-audio``) unless its id is pinned (``pronunciation_dict_id``).

:meth:`PronunciationDictionary.ensure` merges the items a run needs into the dictionary:
an item whose text is new is added, one whose pronunciation changed is replaced, every other
item stays (a stem spoken earlier with it is unaffected, and runs of other partitions may
still need it). The dictionary's *version* is the first 16 hex digits of the sha256 of its
sorted items, for metadata and logs.

What enters a stem signature is the dictionary's identity in the contract
(``cartesia-dict:<id or name>``) plus the items the stem's own text uses (``say`` in the
identity), not the version: a version counts every item, so putting it in the signature
would re-synthesize every pronounced stem whenever any one name's respelling changed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from typing import Any

from hybrid_audio_dagster.core.pronounce.realize import cartesia_item
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.tts.cartesia.errors import CartesiaRequestError

__all__ = ["PronunciationDictionary", "dictionary_version"]

_PATH = "/pronunciation-dicts/"
_MAX_BODY = 8 * 1024 * 1024


def dictionary_version(items: Iterable[dict[str, Any]]) -> str:
    pairs = sorted((str(i.get("text")), str(i.get("pronunciation") or i.get("alias") or "")) for i in items)
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


class PronunciationDictionary:
    """One dictionary of one client (thread-safe: syncs are serialized)."""

    def __init__(self, client, *, name: str, pinned_id: str | None = None) -> None:
        self._client = client
        self.name = name
        self.pinned_id = pinned_id
        self.id: str | None = pinned_id
        self.version: str | None = None
        self._items: dict[str, str] | None = None  # text → pronunciation, as last seen on the server
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        """What the stem contract names (no network): the pinned id, else the name."""
        return f"cartesia-dict:{self.pinned_id or self.name}"

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._client._call(method, path, accept="application/json", max_body=_MAX_BODY, **kwargs)
        return self._client._json(answer)

    def _find(self) -> dict[str, Any] | None:
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            page = self._json("GET", _PATH, params=params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise CartesiaRequestError(f"GET {_PATH} returned no 'data' list")
            for d in data:
                if isinstance(d, dict) and d.get("name") == self.name:
                    return d
            if not data or not page.get("has_more"):
                return None
            after = page.get("next_page") or data[-1].get("id")

    @staticmethod
    def _pairs(d: dict[str, Any]) -> dict[str, str]:
        return {str(i["text"]): str(i.get("pronunciation") or i.get("alias") or "") for i in d.get("items") or ()}

    def ensure(self, say: Iterable[Say]) -> dict[str, Any]:
        """Make the dictionary hold every item of ``say``; returns id, version and counts."""
        wanted = {i["text"]: i["pronunciation"] for i in (cartesia_item(s) for s in say)}
        with self._lock:
            if self._items is not None and all(self._items.get(t) == p for t, p in wanted.items()):
                return self._summary(created=False, changed=0)
            found = self._json("GET", f"{_PATH}{self.id}") if self.id else self._find()
            if found is None:
                made = self._json("POST", _PATH, json_body={"name": self.name, "items": _items(wanted)})
                self._remember(made)
                return self._summary(created=True, changed=len(wanted))
            have = self._pairs(found)
            self.id = str(found["id"])
            changed = {t: p for t, p in wanted.items() if have.get(t) != p}
            if changed:
                found = self._json("PATCH", f"{_PATH}{self.id}", json_body={"items": _items({**have, **changed})})
            self._remember(found)
            return self._summary(created=False, changed=len(changed))

    def _remember(self, d: Any) -> None:
        if not isinstance(d, dict) or not d.get("id"):
            raise CartesiaRequestError("the pronunciation dictionary answer has no id")
        self.id = str(d["id"])
        self._items = self._pairs(d)
        self.version = dictionary_version({"text": t, "pronunciation": p} for t, p in self._items.items())

    def _summary(self, *, created: bool, changed: int) -> dict[str, Any]:
        return {
            "dictionary_id": self.id,
            "name": self.name,
            "version": self.version,
            "items": len(self._items or {}),
            "created": created,
            "changed": changed,
        }


def _items(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"text": t, "pronunciation": p} for t, p in sorted(pairs.items())]
