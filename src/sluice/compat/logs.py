"""CloudWatch Logs for processing and training jobs (AWS JSON 1.1, `X-Amz-Target:
Logs_20140328.<Op>`), so the SageMaker SDK's `wait(logs=True)` shows a job's output.

The log groups are SageMaker's, `/aws/sagemaker/ProcessingJobs` and
`/aws/sagemaker/TrainingJobs`; each job that has printed anything has one stream,
`<job>/algo-1-<creation time>`. Served: DescribeLogGroups, DescribeLogStreams,
GetLogEvents (by time, from the head or the tail, with forward and backward tokens).
Requests go through `JsonService` as the other AWS JSON APIs here; errors are
`{"__type", "message"}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sluice.compat.json_service import JsonService, Operation, ServiceError, Wording
from sluice.control.jobs import JobService
from sluice.entities import Job, JobKind
from sluice.errors import NotFound
from sluice.jobs.output import LOG_NAME, events

TARGET = "Logs_20140328"
GROUPS = {
    "/aws/sagemaker/ProcessingJobs": JobKind.PROCESSING,
    "/aws/sagemaker/TrainingJobs": JobKind.TRAINING,
}
HOST = "algo-1"
MAX_EVENTS = 10_000


class LogsError(ServiceError):
    """An error in CloudWatch Logs' words."""


def stream_name(job: Job) -> str:
    return f"{job.name}/{HOST}-{int(job.created_at.timestamp())}"


class LogsApi(JsonService):
    def __init__(self, jobs: JobService, region: str, account: str) -> None:
        self.jobs = jobs
        self.region, self.account = region, account
        operations: dict[str, Operation] = {
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
        }
        wording = Wording(
            "CloudWatch Logs",
            "InvalidParameterException",
            "message",
            ("ServiceUnavailableException", "internal"),
        )
        super().__init__("logs", TARGET, operations, wording)

    def describe_log_groups(self, m: dict[str, Any]) -> dict[str, Any]:
        prefix = m.get("logGroupNamePrefix", "")
        return {
            "logGroups": [
                {"logGroupName": group, "arn": self._arn(group), "creationTime": 0}
                for group in sorted(GROUPS)
                if group.startswith(prefix)
            ]
        }

    def describe_log_streams(self, m: dict[str, Any]) -> dict[str, Any]:
        kind = _group(m["logGroupName"])
        prefix = m.get("logStreamNamePrefix", "")
        streams: list[dict[str, Any]] = []
        for job in self.jobs.list(kind):
            name = stream_name(job)
            folder = Path(job.details.get("folder", ""))
            if not name.startswith(prefix) or not (folder / LOG_NAME).exists():
                continue
            found = events(folder)
            streams.append(
                {
                    "logStreamName": name,
                    "creationTime": int(job.created_at.timestamp() * 1000),
                    "firstEventTimestamp": found[0].timestamp if found else None,
                    "lastEventTimestamp": found[-1].timestamp if found else None,
                    "lastIngestionTime": found[-1].timestamp if found else None,
                    "arn": f"{self._arn(m['logGroupName'])}:log-stream:{name}",
                }
            )
        by_time = m.get("orderBy") == "LastEventTime"

        def order(stream: dict[str, Any]) -> tuple[int, str]:
            return (stream["lastEventTimestamp"] or 0) if by_time else 0, stream["logStreamName"]

        streams.sort(key=order, reverse=bool(m.get("descending")))
        start = _token(m.get("nextToken"), "s")
        limit = m.get("limit", 50)
        page = streams[start : start + limit]
        out: dict[str, Any] = {"logStreams": page}
        if start + limit < len(streams):
            out["nextToken"] = f"s/{start + limit}"
        return out

    def get_log_events(self, m: dict[str, Any]) -> dict[str, Any]:
        kind = _group(m["logGroupName"])
        job = self._job(kind, m["logStreamName"])
        found = [
            e
            for e in events(Path(job.details.get("folder", "")))
            if m.get("startTime", 0) <= e.timestamp
            and ("endTime" not in m or e.timestamp < m["endTime"])
        ]
        limit = min(m.get("limit", MAX_EVENTS), MAX_EVENTS)
        token = m.get("nextToken")
        if token and token.startswith("b/"):
            end = _token(token, "b")
            start = max(0, end - limit)
        elif token:
            start = _token(token, "f")
            end = min(len(found), start + limit)
        elif m.get("startFromHead"):
            start, end = 0, min(len(found), limit)
        else:
            end = len(found)
            start = max(0, end - limit)
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.timestamp}
                for e in found[start:end]
            ],
            "nextForwardToken": f"f/{end}",
            "nextBackwardToken": f"b/{start}",
        }

    def _job(self, kind: JobKind, stream: str) -> Job:
        name, _, rest = stream.partition("/")
        try:
            job = self.jobs.get(kind, name)
        except NotFound:
            job = None
        if job is None or stream_name(job) != stream:
            raise LogsError("ResourceNotFoundException", "The specified log stream does not exist.")
        return job

    def _arn(self, group: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}"


def _group(name: str) -> JobKind:
    if name not in GROUPS:
        raise LogsError("ResourceNotFoundException", "The specified log group does not exist.")
    return GROUPS[name]


def _token(token: str | None, kind: str) -> int:
    if not token:
        return 0
    head, _, number = token.partition("/")
    if head != kind or not number.isdigit():
        raise LogsError("InvalidParameterException", "The specified nextToken is invalid.")
    return int(number)
