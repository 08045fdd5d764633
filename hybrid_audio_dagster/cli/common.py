"""What every command shares: the connection, ``--json`` output, exit codes, the progress
display while runs are waiting, close-match refusals."""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hybrid_audio_dagster.cli.client import Client, Refused, RemoteError, RunFailed, RunResult, Unreachable, parse_headers

DEFAULT_URL = "http://127.0.0.1:3000"
URL_ENV = "HYBRID_AUDIO_DAGSTER_URL"
HEADERS_ENV = "HYBRID_AUDIO_DAGSTER_HEADERS"
TRIGGER = {"hybrid_audio/trigger": "cli"}


class Exit:
    """Exit codes (also in ``hybrid-audio --help``)."""

    OK = 0
    FAILED = 1  # a run failed, a message did not verify, a check found problems
    REFUSED = 2  # bad input, here or in the webserver: unknown name/developer/template, bad option, file too big, a rejected file
    UNREACHABLE = 3  # no webserver at the URL
    REMOTE = 4  # the webserver answered with an error (auth, GraphQL, refused run)
    NOT_WIRED = 5  # the feature is not in this code location (e.g. GCS)
    TIMEOUT = 6  # runs still going when --timeout ran out


EXIT_HELP = "Exit codes: 0 ok, 1 a run or verification failed, 2 refused input, 3 webserver unreachable, 4 webserver error, 5 not wired in this code location, 6 timeout."

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


@dataclass
class State:
    url: str = DEFAULT_URL
    headers: list[str] = field(default_factory=list)
    json: bool = False
    timeout: float = 600.0
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            try:
                self._client = Client(self.url, parse_headers(self.headers, os.environ.get(HEADERS_ENV)))
            except RemoteError as exc:
                fail(str(exc), Exit.REFUSED)
        return self._client


STATE = State()
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def as_json(flag: bool) -> bool:
    if flag:
        STATE.json = True
    return STATE.json


def fail(message: str, code: int, data: dict | None = None) -> NoReturn:
    """One line on stderr (or a JSON error on stdout with --json, with ``data`` in it), then exit ``code``."""
    line = " ".join(str(message).split())
    if STATE.json:
        print(json.dumps({**(data or {}), "ok": False, "error": line, "exit_code": code}, ensure_ascii=False, default=str))
    else:
        err.print(f"error: {line}", markup=False)
    raise typer.Exit(code)


def emit(data, text: str | Iterable[str] | None = None) -> None:
    """``data`` as JSON with --json, else ``text`` (lines)."""
    if STATE.json:
        print(json.dumps(data, ensure_ascii=False, default=str, indent=1))
        return
    if text is None:
        text = json.dumps(data, ensure_ascii=False, default=str, indent=1)
    for line in [text] if isinstance(text, str) else text:
        out.print(line, markup=False)


def guarded(fn):
    """Map client errors to one line and an exit code (no traceback)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Unreachable as exc:
            fail(f"{exc}; start it with `make ui` (or pass --url / set {URL_ENV})", Exit.UNREACHABLE)
        except Refused as exc:
            fail(f"refused: {exc.reason}", Exit.REFUSED, {"run_id": exc.run_id, "problem": exc.problem})
        except RunFailed as exc:
            fail(str(exc), Exit.FAILED)
        except TimeoutError as exc:
            fail(f"{exc} (they go on in the webserver; raise --timeout to wait longer)", Exit.TIMEOUT)
        except RemoteError as exc:
            fail(str(exc), Exit.REMOTE)

    return wrapper


def slugish(text: str) -> str:
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", t).strip("-")


def pick(kind: str, value: str, known: list[str], *, hint: str = "") -> str:
    """``value`` if it is a known key (or its slug is), else refuse with close matches."""
    if value in known:
        return value
    if slugish(value) in known:
        return slugish(value)
    wanted = slugish(value) or value
    close = [k for k in known if wanted and (k.startswith(wanted) or wanted in k)][:3]
    close += [k for k in difflib.get_close_matches(wanted, known, n=3, cutoff=0.5) if k not in close]
    if not known:
        fail(f"unknown {kind} {value!r}: none registered yet{hint or '; run `hybrid-audio batch` first'}", Exit.REFUSED)
    suggestion = (
        f"; did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else f" (known: {', '.join(known[:8])}{'…' if len(known) > 8 else ''})"
    )
    fail(f"unknown {kind} {value!r}{suggestion}", Exit.REFUSED)


def run_and_wait(
    launches: list[tuple[str, dict]], what: str, *, fail_on_error: bool = True, progress_tags: dict | None = None
) -> list[RunResult]:
    """Launch runs (``(job, launch kwargs)``), wait for all with a progress bar on a
    terminal, and return their results; a failed run raises :class:`RunFailed`."""
    client = STATE.client
    ids = [client.launch(job, **kw) for job, kw in launches]
    show = not STATE.json and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task(what, total=len(ids), note="")

        def on_poll(states: dict[str, dict]) -> None:
            done = sum(1 for s in states.values() if s["status"] in ("SUCCESS", "FAILURE", "CANCELED"))
            inner = client.runs_tagged(progress_tags) if progress_tags and show else []
            parts = sum((s.get("stats") or {}).get("materializations", 0) for s in [*states.values(), *inner])
            stages = f"{sum(1 for s in inner if s['status'] == 'SUCCESS')} stage runs done, " if inner else ""
            progress.update(task, completed=done, note=f"{stages}{parts} partitions recorded")

        states = client.wait(ids, timeout_s=STATE.timeout, on_poll=on_poll)
    results = [client.result(r, states[r]["status"]) for r in ids]
    for r in results:
        if r.status != "SUCCESS" and r.refused:  # bad input is a refusal whatever the caller does with failures
            raise Refused(r.run_id, r.refused, r.failure or "refused")
        if fail_on_error and r.status != "SUCCESS":
            raise RunFailed(r.run_id, r.status, r.failure or "see the run in the Dagster UI")
    return results


def output_of(result: RunResult, step: str) -> dict:
    return (result.outputs.get(step) or {}).get("result") or (result.outputs.get(step) or {}).get("plan") or {}


def project_root() -> str | None:
    """The code location's project root, from the ``paths`` resource's configuration."""
    return STATE.client.resource_values("paths").get("root")
