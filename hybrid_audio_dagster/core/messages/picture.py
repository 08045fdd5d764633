"""A picture of one message's timing (PNG, matplotlib; the optional extra ``[plot]``).

Drawn from the message's bytes and its manifest timeline (``Timeline`` JSON, with the
``stem_paths`` the manifest adds):

* top: the waveform (min/max envelope per pixel column), each segment's span coloured and
  labelled with its id (and text, when given);
* middle: the *segment strip*, one solid block per segment over exactly its frames
  ``[out_start, out_end)``, white where the message is silence; pauses are labelled in ms,
  crossfades too, and the lead and tail;
* bottom: each stem as synthesized, aligned on the message: the retained part solid, the
  silence the trimmer removed before and after it hatched (with its length in ms).

The PNG carries its own geometry as text chunks (``hybrid_audio:timing`` — segment frames —
and ``hybrid_audio:strip`` — the strip's pixel row and the pixels of frame 0 and of the
last frame), so a test can check the drawn boundaries against the manifest.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid_audio_dagster.core.audio.assemble import Timeline
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes

WIDTH_PX, HEIGHT_PX, DPI = 1000, 400, 100
AXES_LEFT, AXES_RIGHT = 0.06, 0.98  # figure fractions of every row (shared x mapping)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
STRIP_META = "hybrid_audio:strip"
TIMING_META = "hybrid_audio:timing"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: ``pip install -e '.[plot]'``."""


@dataclass(frozen=True)
class Picture:
    png: bytes
    segments: list[dict]  # {id, start, end} in frames, as drawn


def _envelope(x: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    columns = max(1, min(columns, n))
    edges = np.linspace(0, n, columns + 1).astype(int)
    lo = np.minimum.reduceat(x, edges[:-1]) if n else np.zeros(1)
    hi = np.maximum.reduceat(x, edges[:-1]) if n else np.zeros(1)
    return edges[:-1], lo, hi


def render_timing(
    timeline: Timeline | Mapping,
    samples: np.ndarray,
    *,
    labels: Mapping[str, str] | None = None,
    stem_frames: Mapping[str, int] | None = None,
    title: str = "",
) -> Picture:
    """The PNG of one message. ``samples``: the message's frames (``(frames,)`` or
    ``(frames, channels)``), ``labels``: segment id → text, ``stem_frames``: stem sha256 →
    frames as synthesized (for the trailing trim; without it only the leading trim shows)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise PlotUnavailable("matplotlib is not installed: pip install -e '.[plot]'") from exc

    if not isinstance(timeline, Timeline):
        timeline = Timeline.from_dict({k: v for k, v in dict(timeline).items() if k != "stem_paths"})
    rate, total = timeline.sample_rate, timeline.total_frames
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    peak = float(np.abs(x).max()) if x.size else 0.0
    x = x / peak if peak else x
    labels = labels or {}
    stem_frames = stem_frames or {}

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    width = AXES_RIGHT - AXES_LEFT
    ax_wave = fig.add_axes((AXES_LEFT, 0.42, width, 0.48))
    ax_strip = fig.add_axes((AXES_LEFT, 0.28, width, 0.10))
    ax_stem = fig.add_axes((AXES_LEFT, 0.10, width, 0.14))
    for ax in (ax_wave, ax_strip, ax_stem):
        ax.set_xlim(0, total)
        ax.margins(x=0)
    ms = lambda frames: round(1000 * frames / rate)  # noqa: E731

    # waveform, segment spans shaded
    cols, lo, hi = _envelope(x, WIDTH_PX)
    ax_wave.fill_between(cols, lo, hi, color="#333333", linewidth=0, step="post")
    ax_wave.set_ylim(-1.15, 1.35)
    ax_wave.set_yticks([])
    ax_wave.set_xticks([])
    segments = []
    for i, e in enumerate(timeline.entries):
        color = PALETTE[i % len(PALETTE)]
        ax_wave.axvspan(e.out_start, e.out_end, color=color, alpha=0.22, linewidth=0)
        text = labels.get(e.segment_id, "")
        label = e.segment_id + (f"\n{text[:28]}" if text else "")
        ax_wave.text((e.out_start + e.out_end) / 2, 1.05, label, ha="center", va="bottom", fontsize=7, color=color)
        segments.append({"id": e.segment_id, "start": e.out_start, "end": e.out_end})
    ax_wave.set_title(title or f"{total / rate:.2f} s, {rate} Hz", fontsize=9, loc="left")

    # the strip: exact segment frames; gaps are pauses (labelled) or lead/tail
    ax_strip.set_ylim(0, 1)
    ax_strip.set_yticks([])
    ax_strip.set_facecolor("white")
    for i, e in enumerate(timeline.entries):
        ax_strip.add_patch(
            Rectangle((e.out_start, 0), e.out_end - e.out_start, 1, color=PALETTE[i % len(PALETTE)], linewidth=0, antialiased=False)
        )
    entries = timeline.entries
    if entries:
        ax_strip.text(entries[0].out_start / 2, 0.5, f"lead\n{ms(timeline.lead_frames)} ms", ha="center", va="center", fontsize=6)
        ax_strip.text((entries[-1].out_end + total) / 2, 0.5, f"tail\n{ms(timeline.tail_frames)} ms", ha="center", va="center", fontsize=6)
    for e, nxt in zip(entries, entries[1:]):
        if e.crossfade_after:
            note = f"×{ms(e.crossfade_after)} ms"
        else:
            note = f"{ms(nxt.out_start - e.out_end)} ms"
        ax_wave.text((e.out_end + nxt.out_start) / 2, -1.1, note, ha="center", va="bottom", fontsize=7, color="#000000")
    ax_strip.set_xticks([])

    # stems as synthesized: trimmed silence hatched
    ax_stem.set_ylim(0, 1)
    ax_stem.set_yticks([])
    ticks = np.linspace(0, total, 9)
    ax_stem.set_xticks(ticks, [f"{t / rate:.2f}s" for t in ticks], fontsize=7)
    for i, e in enumerate(entries):
        color = PALETTE[i % len(PALETTE)]
        ax_stem.add_patch(Rectangle((e.out_start, 0.15), e.out_end - e.out_start, 0.7, color=color, alpha=0.6, linewidth=0))
        head = e.trim_start
        tail = stem_frames[e.stem_sha256] - e.trim_end if e.stem_sha256 in stem_frames else 0
        y = 0.15 if i % 2 == 0 else 0.2
        if head:
            ax_stem.add_patch(Rectangle((e.out_start - head, y), head, 0.6, fill=False, hatch="////", edgecolor=color, linewidth=0.5))
            ax_stem.text(e.out_start - head / 2, 0.9, f"-{ms(head)}", ha="center", va="bottom", fontsize=5, color=color)
        if tail:
            ax_stem.add_patch(Rectangle((e.out_end, y), tail, 0.6, fill=False, hatch="\\\\\\\\", edgecolor=color, linewidth=0.5))
            ax_stem.text(e.out_end + tail / 2, 0.9, f"-{ms(tail)}", ha="center", va="bottom", fontsize=5, color=color)
    ax_stem.set_ylabel("trim", fontsize=7)

    fig.canvas.draw()
    # pixel geometry of the strip (origin top-left, as image readers see it)
    bbox = ax_strip.get_window_extent()
    height = fig.bbox.height
    strip = {"y": int(round(height - (bbox.y0 + bbox.y1) / 2)), "x0": float(bbox.x0), "x1": float(bbox.x1), "frames": total}
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="png",
        dpi=DPI,
        metadata={
            "Software": "hybrid-audio",
            TIMING_META: json.dumps(segments, separators=(",", ":")),
            STRIP_META: json.dumps(strip, separators=(",", ":")),
        },
    )
    return Picture(buf.getvalue(), segments)


def picture_of_row(output_root, stems_root, row: Mapping, *, labels: Mapping[str, str] | None = None) -> Picture:
    """The picture of one manifest row: reads the message and (for the trims) its stems."""
    from hybrid_audio_dagster.core.audio.errors import AudioError
    from hybrid_audio_dagster.core.audio.wav import parse_wav

    timeline = json.loads(row["timeline"])
    stem_paths = timeline.pop("stem_paths", {}) or {}
    message = parse_wav((Path(output_root) / row["path"]).read_bytes(), row["path"])
    stem_frames: dict[str, int] = {}
    for sha, rel in stem_paths.items():
        try:
            stem_frames[sha] = parse_wav((Path(stems_root) / rel).read_bytes(), rel).frames
        except (OSError, ValueError, AudioError):  # a missing stem only hides its tail trim
            continue
    return render_timing(timeline, message.samples, labels=labels, stem_frames=stem_frames, title=f"{row.get('name', '')} · {row['path']}")


def segment_labels(template, name: str, developer: str) -> dict[str, str]:
    """segment id → its text for one message (what the picture prints under each id)."""
    return {s.id: s.render(name=name, developer=developer) for s in template.segments}


def picture_cache_path(output_root, row: Mapping) -> Path:
    """Where the drawn picture of ``row``'s message is kept, beside it (named by the message's
    sha256, so a rebuilt message gets a new picture)."""
    return Path(output_root) / Path(row["path"]).parent / f".timing-{row['name_key']}-{row['sha256'][:16]}.png"


def timing_markdown(row: Mapping, output_root, stems_root, *, labels: Mapping[str, str] | None = None) -> str:
    """The picture of ``row`` as Markdown with a base64 data URI (Dagster's UI shows it
    inline), or a one-line reason when it cannot be drawn. Drawn once per message: a no-op
    run reads the kept PNG (drawing costs ~0.3 s, a hundred partitions would cost 30 s)."""
    import base64

    cached = picture_cache_path(output_root, row)
    try:
        png = cached.read_bytes()
    except OSError:
        try:
            png = picture_of_row(output_root, stems_root, row, labels=labels).png
        except PlotUnavailable as exc:
            return f"_no picture: {exc}_"
        except (OSError, ValueError, KeyError) as exc:
            return f"_no picture: {type(exc).__name__}: {exc}_"
        for old in cached.parent.glob(f".timing-{row['name_key']}-*.png"):
            old.unlink(missing_ok=True)
        atomic_write_bytes(cached, png, fsync=False)
    data = base64.b64encode(png).decode("ascii")
    return f"![timing of {row['path']}](data:image/png;base64,{data})"
