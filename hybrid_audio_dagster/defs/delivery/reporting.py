"""What the delivery's assets and repair job report: the consistency report as metadata,
and delivery errors as run failures that say nothing local was lost."""

from pathlib import Path

import dagster as dg

from hybrid_audio_dagster.core.delivery.errors import DeliveryError

REPORT_LOG = "bucket_consistency.jsonl"  # in logs/: the latest consistency report, one object per line


def delivery_failure(exc: DeliveryError, what: str) -> dg.Failure:
    return dg.Failure(
        f"{what}: {exc}. Local files are untouched; the next run picks up what was not uploaded.",
        metadata={"bucket": exc.bucket or "", "error": type(exc).__name__},
    )


def consistency_metadata(report, regenerate: dict[str, list[str]], log_path: Path | None) -> dict:
    md: dict = {
        "report": dg.MetadataValue.md(report.to_markdown()),
        "clean": report.is_clean,
        "totals": dg.MetadataValue.json(report.summary()),
        "counts": dg.MetadataValue.json(report.counts()),
    }
    if log_path is not None:
        md["jsonl"] = dg.MetadataValue.path(str(log_path))
    if regenerate:
        md["to_regenerate"] = dg.MetadataValue.md(
            "\n".join(
                f"- materialize `{asset}` partition(s) {', '.join(f'`{p}`' for p in parts[:50])}"
                + (f" and {len(parts) - 50} more" if len(parts) > 50 else "")
                for asset, parts in regenerate.items()
            )
        )
    return md
