"""How the small op jobs behind the ``hybrid-audio`` CLI hand back what they did, or why
they refused.

The CLI reads the op's output metadata ``result`` (JSON) over GraphQL, so it needs nothing
but the webserver. A refusal (bad input: an unknown name, an unsafe file name, a file the
dataset rules reject) is a failure whose metadata carries ``refused`` (a problem code): the
CLI tells it from a run that broke and exits 2 with the reason.
"""

import dagster as dg

REFUSED = "refused"


def cli_result(value: dict) -> dg.Output[dict]:
    """``value`` as the op's output and as its metadata ``result``."""
    return dg.Output(value, metadata={"result": dg.MetadataValue.json(value)})


def refused(reason: str, *, problem: str = "bad_input", **metadata) -> dg.Failure:
    """The failure to raise when a run refuses its input: ``reason`` is what the CLI prints,
    ``problem`` a short code (e.g. ``unknown_role``), never retried."""
    return dg.Failure(description=reason, metadata={REFUSED: problem, **metadata}, allow_retries=False)
