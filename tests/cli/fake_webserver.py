"""A stand-in for the Dagster webserver's GraphQL API, for the CLI's unit tests: the real
``Client`` over an ``httpx.MockTransport`` that answers the queries the CLI sends. Each job
answers with a scripted outcome: an output (``cli_result``), materializations, or a refusal
(a step failure whose metadata carries ``refused``, as ``defs.cli_result.refused`` raises it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from hybrid_audio_dagster.cli import common
from hybrid_audio_dagster.cli.client import Client


@dataclass
class Outcome:
    step: str = ""
    output: dict | None = None  # the op's metadata `result`
    materializations: list[tuple[str, dict]] = field(default_factory=list)  # (asset, metadata)
    refused: str = ""  # problem code
    reason: str = ""  # the failure's message
    failed: bool = False  # failed without a refusal (the run broke)


def refusal(problem: str, reason: str) -> Outcome:
    return Outcome(refused=problem, reason=reason)


def _entry(label: str, value) -> dict:
    if isinstance(value, (dict, list)):
        return {"label": label, "__typename": "JsonMetadataEntry", "jsonString": json.dumps(value)}
    if isinstance(value, int):
        return {"label": label, "__typename": "IntMetadataEntry", "intRepr": str(value)}
    return {"label": label, "__typename": "TextMetadataEntry", "text": str(value)}


@dataclass
class FakeWebserver:
    keys: dict[str, list[str]] = field(
        default_factory=lambda: {"name_stems": ["john", "maria"], "developer_stems": ["wyndham"], "script_stems": ["followup-en"]}
    )
    jobs: dict[str, Callable[[dict], Outcome]] = field(default_factory=dict)
    resources: dict[str, dict] = field(default_factory=lambda: {"paths": {"root": "/srv/hybrid-audio"}})
    launches: list[dict] = field(default_factory=list)
    partitions_added: list[str] = field(default_factory=list)
    # asset → (when, in ms since the epoch, metadata) of its latest unpartitioned materialization
    records: dict[str, tuple[float, dict]] = field(default_factory=dict)
    _outcomes: dict[str, Outcome] = field(default_factory=dict)

    def install(self, monkeypatch) -> FakeWebserver:
        def client(url: str, headers) -> Client:
            c = Client(url, headers)
            c._http = httpx.Client(transport=httpx.MockTransport(self._handle))
            return c

        monkeypatch.setattr(common, "Client", client)
        return self

    def launched(self, job: str) -> list[dict]:
        return [launch for launch in self.launches if launch["job"] == job]

    # -- GraphQL -------------------------------------------------------------------------
    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={"data": self._answer(body["query"], body.get("variables") or {})})

    def _answer(self, q: str, v: dict) -> dict:
        if "repositoriesOrError" in q:
            jobs = [{"name": j} for j in (*self.jobs, "datasets_job")]
            return {
                "repositoriesOrError": {
                    "__typename": "RepositoryConnection",
                    "nodes": [{"name": "__repository__", "location": {"name": "hybrid_audio"}, "jobs": jobs}],
                }
            }
        if "launchRun" in q:
            params = v["p"]
            job = params["selector"]["jobName"]
            run_id = f"run-{len(self.launches) + 1}"
            config = params["runConfigData"]
            self.launches.append(
                {
                    "job": job,
                    "run_config": config,
                    "run_id": run_id,
                    "created": time.time(),
                    "tags": {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]},
                }
            )
            self._outcomes[run_id] = self.jobs.get(job, lambda _c: Outcome())(config)
            return {"launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": run_id}}}
        if "runsOrError(filter: {runIds" in q:
            return {
                "runsOrError": {
                    "__typename": "Runs",
                    "results": [
                        {
                            "runId": r,
                            "status": "FAILURE" if (self._outcomes[r].refused or self._outcomes[r].failed) else "SUCCESS",
                            "stats": {"stepsSucceeded": 1, "stepsFailed": 0, "materializations": 0},
                        }
                        for r in v["ids"]
                    ],
                }
            }
        if "runsOrError(filter: {pipelineName" in q:  # the newest run of a job
            created = [launch["created"] for launch in self.launched(v["job"])]
            return {"runsOrError": {"__typename": "Runs", "results": [{"creationTime": max(created)}] if created else []}}
        if "runsOrError(filter: {tags" in q:
            return {"runsOrError": {"__typename": "Runs", "results": []}}
        if "logsForRun" in q:
            return {"logsForRun": {"__typename": "EventConnection", "cursor": "1", "hasMore": False, "events": self._events(v["id"])}}
        if "addDynamicPartition" in q:
            self.partitions_added.append(v["key"])
            return {"addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess", "partitionKey": v["key"]}}
        if "topLevelResourceDetailsOrError" in q:
            values = self.resources.get(v["sel"]["resourceName"], {})
            return {
                "topLevelResourceDetailsOrError": {
                    "__typename": "ResourceDetails",
                    "configuredValues": [{"key": k, "value": json.dumps(val), "type": "VALUE"} for k, val in values.items()],
                }
            }
        if "partitionKeysByDimension" in q:
            asset = v["path"][0]
            when, md = self.records.get(asset, (None, {}))
            recorded = [
                {"partition": None, "runId": "recorded", "timestamp": str(when), "metadataEntries": [_entry(k, x) for k, x in md.items()]}
            ]
            return {
                "assetNodes": [
                    {
                        "partitionKeysByDimension": [{"name": "default", "partitionKeys": self.keys.get(asset, [])}],
                        "assetMaterializations": recorded if when is not None else [],
                    }
                ]
            }
        if "assetNodes(assetKeys" in q:  # the reads' freshness question: when each asset was last recorded
            nodes = []
            for k in v["keys"]:
                when = self.records.get("/".join(k["path"]), (None, {}))[0]
                nodes.append(
                    {"assetKey": {"path": k["path"]}, "assetMaterializations": [{"timestamp": str(when)}] if when is not None else []}
                )
            return {"assetNodes": nodes}
        raise AssertionError(f"the fake webserver does not answer {q[:80]!r}")

    def _events(self, run_id: str) -> list[dict]:
        o = self._outcomes[run_id]
        if o.refused or o.failed:
            metadata = [_entry("refused", o.refused)] if o.refused else []
            return [
                {
                    "__typename": "ExecutionStepFailureEvent",
                    "stepKey": o.step or "op",
                    "error": {"message": f"dagster._core.definitions.events.Failure: {o.reason}\n"},
                    "failureMetadata": {"metadataEntries": metadata},
                }
            ]
        events = [
            {
                "__typename": "MaterializationEvent",
                "assetKey": {"path": asset.split("/")},
                "partition": None,
                "metadataEntries": [_entry(k, val) for k, val in md.items()],
            }
            for asset, md in o.materializations
        ]
        if o.output is not None:
            events.append(
                {
                    "__typename": "ExecutionStepOutputEvent",
                    "stepKey": o.step,
                    "outputName": "result",
                    "metadataEntries": [_entry("result", o.output)],
                }
            )
        return events
