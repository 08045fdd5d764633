"""Talking to a running Dagster webserver over HTTP (GraphQL), for the CLI.

Run submission and status go through Dagster's own ``DagsterGraphQLClient``; the few
queries it has no method for (partition keys, backfills) are plain GraphQL over httpx.
Everything is validated before submission: the webserver accepts an unknown partition
key and only fails the run later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from .partitions import message_partition_key

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

_PARTITIONS_QUERY = """
query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    partitionKeysByDimension { name partitionKeys }
  }
}"""

_LOCATIONS_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

_BACKFILL_MUTATION = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
  }
}"""


class RemoteError(Exception):
    """The webserver could not be reached or refused the request; the message says why."""


@dataclass(frozen=True)
class Remote:
    url: str = "http://127.0.0.1:3000"
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"not an http(s) URL: {self.url!r}")

    # -- plumbing -------------------------------------------------------------------------
    def _client(self) -> DagsterGraphQLClient:
        parts = urlsplit(self.url)
        return DagsterGraphQLClient(
            parts.hostname, port_number=parts.port, use_https=parts.scheme == "https",
            timeout=int(self.timeout_s), path_prefix=parts.path.rstrip("/"),
        )

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        endpoint = self.url.rstrip("/") + "/graphql"
        try:
            response = httpx.post(endpoint, json={"query": query, "variables": variables or {}}, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the Dagster webserver at {self.url}: {exc}") from None
        if response.status_code != 200:
            raise RemoteError(f"{endpoint} answered HTTP {response.status_code}")
        body = response.json()
        if body.get("errors"):
            raise RemoteError("GraphQL error: " + "; ".join(e.get("message", "?") for e in body["errors"]))
        return body["data"]

    # -- queries --------------------------------------------------------------------------
    def locations(self) -> list[dict]:
        ws = self.graphql(_LOCATIONS_QUERY)["workspaceOrError"]
        if ws["__typename"] != "Workspace":
            raise RemoteError(f"workspace not available: {ws}")
        return ws["locationEntries"]

    def partition_keys(self, asset: str) -> dict[str, list[str]]:
        """dimension name → keys (a single-dimension asset has one entry, name '')."""
        nodes = self.graphql(_PARTITIONS_QUERY, {"path": [asset]})["assetNodes"]
        if not nodes:
            raise RemoteError(f"no asset named {asset!r} in the deployment")
        return {d["name"]: d["partitionKeys"] for d in nodes[0]["partitionKeysByDimension"]}

    # -- actions --------------------------------------------------------------------------
    def generate(self, *, template: str, developer: str, names: list[str]) -> str:
        """Submit a messages run for ``names`` in one template × developer partition."""
        dims = self.partition_keys("messages")
        if template not in dims.get("template", []):
            raise RemoteError(f"unknown template {template!r}; known: {', '.join(dims.get('template', []))}")
        if developer not in dims.get("developer", []):
            raise RemoteError(f"unknown developer {developer!r}: not a partition (is it in the developers dataset?)")
        known_names = set(next(iter(self.partition_keys("name_stems").values()), []))
        unknown = [n for n in names if n not in known_names]
        if unknown:
            raise RemoteError(f"unknown name slug(s) {unknown}: not partitions of name_stems")
        return self.submit_messages(
            str(message_partition_key(template, developer)),
            {"ops": {"messages": {"config": {"names": names, "force": False}}}},
        )

    def submit_messages(self, partition_key: str, run_config: dict, tags: dict | None = None) -> str:
        """Submit ``messages_job`` for one template × developer partition (as a one-key range,
        the same shape a single-run backfill takes)."""
        all_tags = {**(tags or {}), RANGE_START_TAG: partition_key, RANGE_END_TAG: partition_key, "hybrid_audio/trigger": "cli"}
        try:
            return self._client().submit_job_execution("messages_job", run_config=run_config, tags=all_tags)
        except DagsterGraphQLClientError as exc:
            raise RemoteError(f"the webserver refused the run: {exc}") from None

    def backfill(self, asset: str) -> str:
        """Launch a backfill of every partition of ``asset`` (one run per range, as the UI does)."""
        self.partition_keys(asset)  # fails clearly on an unknown asset
        result = self.graphql(
            _BACKFILL_MUTATION,
            {"params": {"assetSelection": [{"path": [asset]}], "allPartitions": True, "tags": [{"key": "hybrid_audio/trigger", "value": "cli"}]}},
        )["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RemoteError(f"backfill refused ({result['__typename']}): {result.get('message', result)}")
        return result["backfillId"]

    def run_status(self, run_id: str) -> str:
        try:
            return self._client().get_run_status(run_id).value
        except DagsterGraphQLClientError as exc:
            raise RemoteError(f"cannot read the status of run {run_id}: {exc}") from None

    def wait(self, run_id: str, *, timeout_s: float = 600, poll_s: float = 1.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.run_status(run_id)
            if status in TERMINAL:
                return status
            if time.monotonic() > deadline:
                raise RemoteError(f"run {run_id} still {status} after {timeout_s:.0f}s")
            time.sleep(poll_s)
