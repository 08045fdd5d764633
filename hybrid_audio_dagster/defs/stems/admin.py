"""``invalidate_stems_job`` (``hybrid-audio cache invalidate``): tombstones stems by
signature (prefix) so the next stems run re-synthesizes exactly them
(:meth:`StemStore.invalidate`); audited."""

import dagster as dg

from hybrid_audio_dagster.core.stems.store import StemStore
from hybrid_audio_dagster.defs.cli_result import cli_result, refused
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

MIN_PREFIX = 8


class InvalidateConfig(dg.Config):
    """Stems to invalidate: signatures, or unique prefixes of at least 8 hex digits."""

    stems: list[str]


@dg.op(description="Marks stems (by signature) so the next stems run re-synthesizes exactly them.")
def invalidate_stems(context: dg.OpExecutionContext, config: InvalidateConfig, paths: ProjectPaths) -> dg.Output[dict]:
    store = StemStore(paths.stems)
    known = list(store.signatures())
    found, problems = [], []
    for wanted in dict.fromkeys(s.strip().lower() for s in config.stems):
        if len(wanted) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
            problems.append(f"{wanted!r}: give a signature or a prefix of at least {MIN_PREFIX} hex digits")
            continue
        matches = [(e, s) for e, s in known if s.startswith(wanted)]
        if len(matches) != 1:
            problems.append(f"{wanted!r}: {'no stored stem' if not matches else f'{len(matches)} stems'} match")
            continue
        found.append(matches[0])
    if problems:
        raise refused("nothing invalidated: " + "; ".join(problems), problem="unknown_stem")
    done = [{"engine": e, "signature": s, "files": store.invalidate(e, s)} for e, s in found]
    run_auditor(context, paths)("stems_invalidated", stems=[d["signature"][:16] for d in done], files=sum(d["files"] for d in done))
    return cli_result({"invalidated": done})


@dg.job(description="Invalidates stems by signature: the next stems run re-synthesizes exactly them.")
def invalidate_stems_job() -> None:
    invalidate_stems()
