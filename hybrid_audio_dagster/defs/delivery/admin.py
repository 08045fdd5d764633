"""``bucket_admin_job``: the bucket's listing and one stem's check, for ``hybrid-audio
bucket list|check`` (consistency and repair are the delivery code's own asset and job)."""

import dagster as dg

from hybrid_audio_dagster.core.delivery.layout import file_checksums
from hybrid_audio_dagster.core.stems.store import StemStore
from hybrid_audio_dagster.defs.cli_result import cli_result, refused
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

MAX_LISTED = 2000


class BucketAdminConfig(dg.Config):
    action: str  # list | check
    prefix: str = ""  # list: below the layout's prefix
    stem: str = ""  # check: a signature or a unique prefix (>= 8 hex digits)


def stem_check(paths: ProjectPaths, gcs: DeliveryResource, engine: str, sig: str, remote: dict | None = None) -> dict:
    """One stored stem's files against the bucket (``remote``: object name → object, a listing
    already made; else this stem's prefix is listed)."""
    store = StemStore(paths.stems)
    record = store.find(sig, engine)
    folder = store.signature_dir(engine, sig)
    files = sorted(p for p in folder.glob("*.wav")) if record is None else [paths.stems / record.path]
    out = {"signature": sig, "engine": engine, "objects": []}
    if remote is None:
        remote = {o.name: o for o in gcs.list_objects(gcs.layout.stem_object(f"{engine}/{sig[:2]}/{sig}") + "/")}
    for f in files:
        rel = f.relative_to(paths.stems).as_posix()
        name = gcs.layout.stem_object(rel)
        local = file_checksums(f)
        obj = remote.get(name)
        state = "missing" if obj is None else ("in_sync" if local.matches(md5=obj.md5, crc32c=obj.crc32c, size=obj.size) else "mismatch")
        out["objects"].append({"local": str(f), "object": name, "uri": gcs.uri(name), "state": state})
    out["in_sync"] = bool(out["objects"]) and all(o["state"] == "in_sync" for o in out["objects"])
    return out


def _stem_check(paths: ProjectPaths, gcs: DeliveryResource, wanted: str) -> dict:
    store = StemStore(paths.stems)
    matches = [(e, s) for e, s in store.signatures() if len(wanted) >= 8 and s.startswith(wanted.lower())]
    if len(matches) != 1:
        raise refused(f"{wanted!r}: {'no stored stem' if not matches else f'{len(matches)} stems'} match", problem="unknown_stem")
    return stem_check(paths, gcs, *matches[0])


def listing(gcs: DeliveryResource, prefix: str = "") -> dict:
    """``bucket list``'s answer: the objects below ``prefix`` (under the layout's prefix)."""
    full = "/".join(p.strip("/") for p in (gcs.layout.prefix, prefix) if p.strip("/")) if prefix else None
    objects = gcs.list_objects(full)
    return {
        "enabled": True,
        "status": gcs.status_message,
        "count": len(objects),
        "objects": [{"name": o.name, "size": o.size, "md5": o.md5, "uri": gcs.uri(o.name)} for o in objects[:MAX_LISTED]],
    }


@dg.op(description="Lists the bucket under a prefix, or checks one stem against it.")
def bucket_admin(context: dg.OpExecutionContext, config: BucketAdminConfig, paths: ProjectPaths, gcs: DeliveryResource) -> dg.Output[dict]:
    if not gcs.enabled:
        out = {"enabled": False, "status": gcs.status_message}
    elif config.action == "list":
        out = listing(gcs, config.prefix)
    elif config.action == "check":
        out = {"enabled": True, "status": gcs.status_message, **_stem_check(paths, gcs, config.stem)}
    else:
        raise refused(f"unknown action {config.action!r} (list, check)", problem="unknown_action")
    return cli_result(out)


@dg.job(description="The bucket's listing, or one stem checked against it (`hybrid-audio bucket list|check`).")
def bucket_admin_job() -> None:
    bucket_admin()
