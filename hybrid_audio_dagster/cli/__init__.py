"""``hybrid-audio``: the command line, over the Dagster webserver's GraphQL API only.

Every command launches runs (or reads run and asset records) on the webserver at
``--url`` (default ``http://127.0.0.1:3000``, or ``HYBRID_AUDIO_DAGSTER_URL``), with
optional ``--header 'Name: value'`` (or ``HYBRID_AUDIO_DAGSTER_HEADERS``). Nothing is read
from or written to the project's files here, except what you give (an upload) or ask for
(a picture).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hybrid_audio_dagster.cli import cache as _cache
from hybrid_audio_dagster.cli import datasets as _datasets
from hybrid_audio_dagster.cli import messages as _messages
from hybrid_audio_dagster.cli import rotation as _rotation
from hybrid_audio_dagster.cli.common import DEFAULT_URL, EXIT_HELP, STATE, URL_ENV, guarded

app = typer.Typer(
    name="hybrid-audio",
    help=f"Hybrid Audio over the Dagster webserver. {EXIT_HELP}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _connection(
    url: Annotated[str, typer.Option(envvar=URL_ENV, help="The Dagster webserver.")] = DEFAULT_URL,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="'Name: value' sent with every request (repeatable); also HYBRID_AUDIO_DAGSTER_HEADERS."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="JSON output for every command.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for runs.")] = 600.0,
) -> None:
    STATE.url, STATE.headers, STATE.json, STATE.timeout, STATE._client = url, list(header or []), json_, timeout, None


def _guard_group(group: typer.Typer) -> None:
    for info in group.registered_commands:
        info.callback = guarded(info.callback)


for _group, _name in (
    (_messages.generate_app, "generate"),
    (_cache.cache_app, "cache"),
    (_cache.bucket_app, "bucket"),
    (_datasets.datasets_app, "datasets"),
    (_rotation.rotation_app, "rotation"),
):
    _guard_group(_group)
    app.add_typer(_group, name=_name)


def status(json_: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """The webserver's code location and how many names, developers and templates it holds."""
    from hybrid_audio_dagster.cli.common import as_json, emit

    as_json(json_)
    client = STATE.client
    repo = client.repository()
    counts = {
        kind: len(client.partition_keys(asset))
        for kind, asset in (("names", "name_stems"), ("developers", "developer_stems"), ("templates", "script_stems"))
    }
    emit(
        {"ok": True, "location": repo["repositoryLocationName"], "loaded": True, "jobs": len(repo["jobs"]), **counts},
        [f"{repo['repositoryLocationName']}: LOADED ({len(repo['jobs'])} jobs)"] + [f"{k:<11} {v} partitions" for k, v in counts.items()],
    )


for _fn in (_messages.assemble, _messages.batch, _messages.picture, _messages.erase, status):
    app.command(_fn.__name__)(guarded(_fn))


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (also when called from a test)."""
    try:
        app(args=argv, prog_name="hybrid-audio")
    except SystemExit as exc:  # typer's standalone mode ends every invocation so
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
