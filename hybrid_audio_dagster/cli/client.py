"""The webserver's GraphQL API, as the CLI uses it: runs, their events, partitions, asset
metadata, resources. Plain GraphQL over httpx with optional headers (a proxy's token,
``Dagster-Cloud-Api-Token``); nothing else is reached and no local file is read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

_META = """metadataEntries { label __typename
  ... on JsonMetadataEntry { jsonString } ... on TextMetadataEntry { text } ... on IntMetadataEntry { intRepr }
  ... on FloatMetadataEntry { floatRepr } ... on MarkdownMetadataEntry { mdStr } ... on PathMetadataEntry { path }
  ... on BoolMetadataEntry { boolValue } ... on UrlMetadataEntry { url } }"""

_REPOS = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name }
  jobs { name } } } ... on PythonError { message } } }"""

_LAUNCH = """mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message } ... on InvalidSubsetError { message } ... on PipelineNotFoundError { message }
  ... on RunConflict { message } ... on UnauthorizedError { message } ... on InvalidStepError { invalidStepKey }
  ... on ConflictingExecutionParamsError { message } ... on NoModeProvidedError { message } } }"""

_RUNS = """query ($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { __typename ... on Runs { results { runId status
  stats { ... on RunStatsSnapshot { stepsSucceeded stepsFailed materializations } } } } ... on PythonError { message } } }"""

_RUNS_TAGGED = """query ($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { __typename ... on Runs { results { runId status
  stats { ... on RunStatsSnapshot { materializations } } } } } }"""

_LOGS = """query ($id: ID!, $after: String) { logsForRun(runId: $id, afterCursor: $after) { __typename
  ... on EventConnection { cursor hasMore events { __typename
    ... on MaterializationEvent { assetKey { path } partition __META__ }
    ... on ExecutionStepOutputEvent { stepKey outputName __META__ }
    ... on ExecutionStepFailureEvent { stepKey error { message } failureMetadata { __META__ } }
    ... on RunFailureEvent { message } } }
  ... on RunNotFoundError { message } ... on PythonError { message } } }""".replace(
    "__META__", _META
)  # GraphQL braces rule out str.format and f-strings

_ASSET = """query ($path: [String!]!, $partitions: [String!], $limit: Int) { assetNodes(assetKeys: [{path: $path}]) {
  partitionKeysByDimension { name partitionKeys }
  assetMaterializations(partitions: $partitions, limit: $limit) { partition runId timestamp __META__ } } }""".replace("__META__", _META)  # noqa: UP031

_LATEST = """query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } assetMaterializations(limit: 1) {
  timestamp } } }"""

_LAST_RUN = """query ($job: String!) { runsOrError(filter: {pipelineName: $job}, limit: 1) { __typename
  ... on Runs { results { creationTime } } } }"""

_KEYS = """query ($path: [String!]!) { assetNodes(assetKeys: [{path: $path}]) { partitionKeysByDimension { name partitionKeys } } }"""

_ADD_PARTITION = """mutation ($repo: RepositorySelector!, $def: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $def, partitionKey: $key) { __typename
    ... on AddDynamicPartitionSuccess { partitionKey } ... on PythonError { message } ... on UnauthorizedError { message }
    ... on DuplicateDynamicPartitionError { partitionName } } }"""

_RESOURCE = """query ($sel: ResourceSelector!) { topLevelResourceDetailsOrError(resourceSelector: $sel) { __typename
  ... on ResourceDetails { configuredValues { key value type } } ... on ResourceNotFoundError { message } } }"""


class RemoteError(Exception):
    """The webserver refused or failed a request; the message says why."""


class Unreachable(RemoteError):
    """Nothing answers at the URL."""


class RunFailed(RemoteError):
    def __init__(self, run_id: str, status: str, reason: str) -> None:
        super().__init__(f"run {run_id} {status.lower()}: {reason}")
        self.run_id, self.status, self.reason = run_id, status, reason


class Refused(RunFailed):
    """The run refused its input (its failure carries the metadata ``refused``: a problem
    code); the message is the server's reason."""

    def __init__(self, run_id: str, problem: str, reason: str) -> None:
        RemoteError.__init__(self, reason)
        self.run_id, self.status, self.reason, self.problem = run_id, "FAILURE", reason, problem


def parse_headers(values: list[str] | None, env_value: str | None = None) -> dict[str, str]:
    """``Name: value`` pairs (options, or the env var: one per line or ``;``-separated, or a
    JSON object)."""
    out: dict[str, str] = {}
    raw: list[str] = []
    if env_value and env_value.strip():
        text = env_value.strip()
        if text.startswith("{"):
            try:
                out.update({str(k): str(v) for k, v in json.loads(text).items()})
            except ValueError:
                raise RemoteError("HYBRID_AUDIO_DAGSTER_HEADERS is not a JSON object nor 'Name: value' lines") from None
        else:
            raw += [p for line in text.splitlines() for p in line.split(";")]
    raw += list(values or [])
    for item in raw:
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise RemoteError(f"header {name.strip()!r}… is not 'Name: value'")
        out[name.strip()] = value.strip()
    return out


def metadata_of(entries: list[dict]) -> dict:
    """GraphQL metadata entries → {label: python value}."""
    out: dict = {}
    for e in entries or []:
        t = e["__typename"]
        if t == "JsonMetadataEntry":
            out[e["label"]] = json.loads(e["jsonString"])
        elif t == "IntMetadataEntry":
            out[e["label"]] = int(e["intRepr"]) if e.get("intRepr") not in (None, "") else None
        elif t == "FloatMetadataEntry":
            out[e["label"]] = float(e["floatRepr"]) if e.get("floatRepr") not in (None, "") else None
        else:
            out[e["label"]] = e.get("text") or e.get("mdStr") or e.get("path") or e.get("url") or e.get("boolValue")
    return out


@dataclass
class RunResult:
    run_id: str
    status: str
    materializations: list[dict] = field(default_factory=list)  # {asset, partition, metadata}
    outputs: dict[str, dict] = field(default_factory=dict)  # step key → output metadata
    failure: str = ""
    refused: str = ""  # the problem code when the run refused its input (see ``Refused``)


@dataclass
class Client:
    url: str = "http://127.0.0.1:3000"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    _repo: dict | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"not an http(s) URL: {self.url!r}")
        self._http = httpx.Client(headers=dict(self.headers), timeout=self.timeout_s)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        endpoint = self.url.rstrip("/") + "/graphql"
        try:
            response = self._http.post(endpoint, json={"query": query, "variables": variables or {}})
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the Dagster webserver at {self.url} ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise RemoteError(f"{endpoint} answered HTTP {response.status_code}: check --header / HYBRID_AUDIO_DAGSTER_HEADERS")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 and not (isinstance(body, dict) and body.get("errors")):
            raise RemoteError(f"{endpoint} answered HTTP {response.status_code}")
        if not isinstance(body, dict):
            raise RemoteError(f"{endpoint} did not answer JSON: is this a Dagster webserver?")
        if body.get("errors"):
            raise RemoteError("GraphQL error: " + "; ".join(e.get("message", "?") for e in body["errors"])[:500])
        return body["data"]

    # -- the code location --------------------------------------------------------------------
    def repository(self) -> dict:
        if self._repo is None:
            data = self.graphql(_REPOS)["repositoriesOrError"]
            if data["__typename"] != "RepositoryConnection" or not data["nodes"]:
                raise RemoteError(f"no code location loaded: {data.get('message', data['__typename'])}")
            node = data["nodes"][0]
            self._repo = {
                "repositoryName": node["name"],
                "repositoryLocationName": node["location"]["name"],
                "jobs": {j["name"] for j in node["jobs"]},
            }
        return self._repo

    def has_job(self, name: str) -> bool:
        return name in self.repository()["jobs"]

    def selector(self) -> dict:
        r = self.repository()
        return {"repositoryName": r["repositoryName"], "repositoryLocationName": r["repositoryLocationName"]}

    def resource_values(self, name: str) -> dict[str, str]:
        """Configured values of a top-level resource (env vars show as their names)."""
        data = self.graphql(_RESOURCE, {"sel": {**self.selector(), "resourceName": name}})["topLevelResourceDetailsOrError"]
        if data["__typename"] != "ResourceDetails":
            return {}
        return {v["key"]: v["value"].strip('"') for v in data["configuredValues"] if v["type"] == "VALUE"}

    def partition_keys(self, asset: str) -> list[str]:
        nodes = self.graphql(_KEYS, {"path": [asset]})["assetNodes"]
        if not nodes:
            raise RemoteError(f"no asset named {asset!r} in the code location")
        dims = nodes[0]["partitionKeysByDimension"]
        return list(dims[0]["partitionKeys"]) if dims else []

    def latest_materializations(self, asset: str, partitions: list[str] | None = None, limit: int = 5000) -> dict[str, dict]:
        """partition → {metadata, run_id, timestamp} of its latest materialization."""
        nodes = self.graphql(_ASSET, {"path": [asset], "partitions": partitions, "limit": limit})["assetNodes"]
        if not nodes:
            raise RemoteError(f"no asset named {asset!r} in the code location")
        out: dict[str, dict] = {}
        for m in nodes[0]["assetMaterializations"]:  # newest first
            if m["partition"] not in out:
                out[m["partition"]] = {"metadata": metadata_of(m["metadataEntries"]), "run_id": m["runId"], "timestamp": m["timestamp"]}
        return out

    def latest_timestamps(self, assets: list[str]) -> dict[str, float | None]:
        """asset → when it was last materialized (ms since the epoch; None if never), for the
        assets the code location has (one request)."""
        nodes = self.graphql(_LATEST, {"keys": [{"path": a.split("/")} for a in assets]})["assetNodes"]
        return {
            "/".join(n["assetKey"]["path"]): float(n["assetMaterializations"][0]["timestamp"]) if n["assetMaterializations"] else None
            for n in nodes
        }

    def last_run_created(self, job: str) -> float | None:
        """When the newest run of ``job`` was created (ms since the epoch; None if none)."""
        data = self.graphql(_LAST_RUN, {"job": job})["runsOrError"]
        results = data.get("results") or [] if data["__typename"] == "Runs" else []
        return float(results[0]["creationTime"]) * 1000 if results else None

    def recorded_if_fresh(
        self,
        record: str,
        inputs: Sequence[str] = (),
        writer_jobs: Sequence[str] = (),
    ) -> dict | None:
        """``record``'s latest materialization metadata, unless it was never recorded or one of
        its ``inputs`` was materialized, or a run of one of ``writer_jobs`` was created, after
        it: then None, and the caller asks a run. Reads that answer from a
        record ask this first, so a stale record is never shown as the answer."""
        records = self.records_if_fresh([record], inputs, writer_jobs)
        return None if records is None else records[record]

    def records_if_fresh(
        self,
        records: Sequence[str],
        inputs: Sequence[str] = (),
        writer_jobs: Sequence[str] = (),
    ) -> dict[str, dict] | None:
        """:meth:`recorded_if_fresh` for an answer several assets record together: each
        record's latest metadata, unless one was never recorded, or an input was materialized
        or a writer run created after the oldest of them."""
        stamps = self.latest_timestamps([*records, *inputs])
        own = [stamps.get(r) for r in records]
        if any(t is None for t in own):
            return None
        oldest = min(own)
        if any(t is not None and t > oldest for a, t in stamps.items() if a not in records):
            return None
        if any((self.last_run_created(job) or 0) > oldest for job in writer_jobs):
            return None
        return {r: (self.latest_materializations(r, limit=1).get(None) or {}).get("metadata") or {} for r in records}

    def add_partition(self, partitions_def: str, key: str) -> None:
        res = self.graphql(_ADD_PARTITION, {"repo": self.selector(), "def": partitions_def, "key": key})["addDynamicPartition"]
        if res["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise RemoteError(f"cannot add partition {key!r}: {res.get('message', res['__typename'])}")

    # -- runs ---------------------------------------------------------------------------------
    def launch(
        self,
        job: str,
        *,
        run_config: dict | None = None,
        tags: Mapping[str, str] | None = None,
        partition: str | None = None,
        assets: list[str] | None = None,
    ) -> str:
        tags = {**(tags or {})}
        if partition is not None:
            tags["dagster/partition"] = partition
        params = {
            "selector": {
                **self.selector(),
                "jobName": job,
                **({"assetSelection": [{"path": a.split("/")} for a in assets]} if assets else {}),
            },
            "runConfigData": run_config or {},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": str(v)} for k, v in tags.items()]},
        }
        res = self.graphql(_LAUNCH, {"p": params})["launchRun"]
        if res["__typename"] == "LaunchRunSuccess":
            return res["run"]["runId"]
        detail = res.get("message") or "; ".join(e["message"] for e in res.get("errors", [])) or res["__typename"]
        raise RemoteError(f"the webserver refused the {job} run: {detail}"[:600])

    def statuses(self, run_ids: list[str]) -> dict[str, dict]:
        data = self.graphql(_RUNS, {"ids": run_ids})["runsOrError"]
        if data["__typename"] != "Runs":
            raise RemoteError(data.get("message", data["__typename"]))
        return {r["runId"]: r for r in data["results"]}

    def runs_tagged(self, tags: Mapping[str, str]) -> list[dict]:
        data = self.graphql(_RUNS_TAGGED, {"tags": [{"key": k, "value": v} for k, v in tags.items()]})["runsOrError"]
        return data.get("results", []) if data["__typename"] == "Runs" else []

    def wait(
        self, run_ids: list[str], *, timeout_s: float = 600, poll_s: float = 0.5, on_poll: Callable[[dict[str, dict]], None] | None = None
    ) -> dict[str, dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.statuses(run_ids)
            if on_poll is not None:
                on_poll(states)
            if all(states.get(r, {}).get("status") in TERMINAL for r in run_ids):
                return states
            if time.monotonic() > deadline:
                pending = [r for r in run_ids if states.get(r, {}).get("status") not in TERMINAL]
                raise TimeoutError(f"run(s) {', '.join(pending)} not finished after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def events(self, run_id: str) -> Iterator[dict]:
        cursor = None
        while True:
            data = self.graphql(_LOGS, {"id": run_id, "after": cursor})["logsForRun"]
            if data["__typename"] != "EventConnection":
                raise RemoteError(data.get("message", data["__typename"]))
            yield from data["events"]
            cursor = data["cursor"]
            if not data["hasMore"]:
                return

    def result(self, run_id: str, status: str) -> RunResult:
        out = RunResult(run_id, status)
        for e in self.events(run_id):
            t = e["__typename"]
            if t == "MaterializationEvent":
                out.materializations.append(
                    {"asset": "/".join(e["assetKey"]["path"]), "partition": e["partition"], "metadata": metadata_of(e["metadataEntries"])}
                )
            elif t == "ExecutionStepOutputEvent":
                out.outputs[e["stepKey"]] = metadata_of(e["metadataEntries"])
            elif t == "ExecutionStepFailureEvent" and not out.failure:
                message = (e.get("error") or {}).get("message", "").strip()
                out.failure = message.split("Failure: ", 1)[-1] if message.startswith("dagster.") else message
                refused = metadata_of((e.get("failureMetadata") or {}).get("metadataEntries") or []).get("refused")
                out.refused = str(refused) if refused else ""
            elif t == "RunFailureEvent" and not out.failure:
                out.failure = e.get("message", "")
        return out
