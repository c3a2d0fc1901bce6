"""`vendor: amazon_connect`: queue intervals from Amazon Connect's `GetMetricDataV2` and
agent status from its agent event stream.

What we followed (Amazon Connect API Reference and Administrator Guide, and the `connect`
service model that botocore ships, which is generated from the same definition):

- `GetMetricDataV2`: `POST /metrics/data` (rest-json) with `ResourceArn` (the instance
  ARN), `StartTime` / `EndTime` (epoch seconds), `Interval` {`TimeZone`, `IntervalPeriod`:
  FIFTEEN_MIN | THIRTY_MIN | HOUR; "the difference between StartTime and EndTime must be less
  than 3 days" for these}, `Filters` (1-5, each `FilterKey` with 1-100 `FilterValues`; a
  QUEUE filter is required here), `Groupings` [QUEUE, CHANNEL], `Metrics` [{`Name`}],
  `MaxResults` (1-100) and `NextToken`. Answer: `MetricResults[]` of `Dimensions` {QUEUE,
  CHANNEL}, `MetricInterval` {`Interval`, `StartTime`, `EndTime`} and `Collections[]` of
  {`Metric` {`Name`}, `Value`}, plus `NextToken`. "EndTime ... cannot be later than the
  current timestamp"; data is kept for 3 months. The API allows 5 requests a second by
  default (service quotas), our default `http.requests_per_second`.
  Metrics: CONTACTS_QUEUED (offered), CONTACTS_HANDLED (answered), CONTACTS_ABANDONED,
  SUM_HANDLE_TIME (seconds; `GetMetricData`'s HANDLE_TIME), SUM_HOLD_TIME and
  SUM_AFTER_CONTACT_WORK_TIME (seconds). A null value ("cannot be performed ... insufficient
  data") counts as 0.
- `ListQueues`: `GET /queues-summary/{InstanceId}?queueTypes=STANDARD&maxResults=&
  nextToken=`, answer `QueueSummaryList[]` {Id, Arn, Name, QueueType} and `NextToken`: the
  queues to filter by, unless `queue_ids` lists them.
- Requests are signed with AWS Signature Version 4 (service `connect`) by botocore's own
  signer, anew for every attempt (a signature carries its time).
- Agent event stream (Administrator Guide, "Amazon Connect agent event streams"): JSON
  records with `AgentARN`, `EventId`, `EventTimestamp`, `EventType` (STATE_CHANGE, LOGIN,
  LOGOUT, HEART_BEAT), `CurrentAgentSnapshot` {`AgentStatus` {`Name`, `StartTimestamp`},
  `Configuration` {`Username`, ...}, `Contacts[]` {`State`, ...}}, `Version` "2019-05-25".
  Kinesis delivers them at least once; Firehose writes them to files concatenated without
  separators, in `YYYY/MM/DD/HH/` folders. We read such files (or JSON lines, or JSON
  arrays) from `event_folder`, keep each `EventId` once and ignore HEART_BEAT.

Decided here: agents are identified by `Configuration.Username`, the Amazon Connect user
name (the one identifier every record carries that people recognise; the AgentARN is stable
but opaque). A segment starts at each LOGIN or STATE_CHANGE whose activity differs from the
agent's current one and ends at the next such event or at LOGOUT; the activity is the agent
status name, and while the snapshot lists a contact, "<status> / <contact state>" (e.g.
"Available / CONNECTED", "Available / ENDED" for after-contact work).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import Field, field_validator

from etl import clock
from etl.resources.sources.base import (
    Extract,
    SourceError,
    SourceResource,
    SourceSettings,
    WindowFailure,
)
from etl.resources.sources.plumbing.frames import (
    contact_rows,
    known_channels,
    overlapping,
    rejected_rows,
    status_rows,
)
from etl.resources.sources.plumbing.http import HttpClient, HttpSettings
from etl.resources.sources.plumbing.locations import resolve
from etl.resources.sources.plumbing.paging import paginate
from etl.resources.sources.plumbing.timegrid import grid_window, split_window

VENDOR = "Amazon Connect"
SERVICE = "connect"
PERIODS = {15: "FIFTEEN_MIN", 30: "THIRTY_MIN", 60: "HOUR"}
METRICS = {
    "CONTACTS_QUEUED": "offered",
    "CONTACTS_HANDLED": "answered",
    "CONTACTS_ABANDONED": "abandoned",
    "SUM_HANDLE_TIME": "handle_time_s",
    "SUM_HOLD_TIME": "hold_time_s",
    "SUM_AFTER_CONTACT_WORK_TIME": "acw_time_s",
}
DEFAULT_CHANNELS = {"VOICE": "calls", "CHAT": "chats", "TASK": "tickets", "EMAIL": "emails"}
STATUS_EVENTS = {"LOGIN", "STATE_CHANGE", "LOGOUT"}
ARN = re.compile(r"^arn:aws[\w-]*:connect:([a-z0-9-]+):\d{12}:instance/([\w-]+)$")
STREAM_PAGE = 1000
HOUR_FOLDER = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})(/|$)")


class AmazonConnectSettings(SourceSettings):
    """`source:` settings of `vendor: amazon_connect`."""

    instance_arn: str = Field(description="arn:aws:connect:<region>:<account>:instance/<id>")
    access_key_id: str = Field(description="AWS access key id of an IAM user or role.")
    secret_access_key_env: str = Field(description="Environment variable holding its secret.")
    session_token_env: str | None = Field(
        default=None, description="Environment variable holding a session token, if any."
    )
    endpoint_url: str | None = Field(default=None, description="Default connect.<region>.")
    queue_ids: list[str] = Field(default=[], description="Only these queues (default: all).")
    channels: dict[str, str] = DEFAULT_CHANNELS
    max_hours_per_request: int = Field(default=71, ge=1, le=71)  # "less than 3 days"
    max_results: int = Field(default=100, ge=1, le=100)
    event_folder: str | None = Field(
        default=None, description="Folder the agent event stream's records land in."
    )
    event_redis_url_env: str | None = Field(
        default=None, description="Or: environment variable holding a Redis URL whose stream..."
    )
    event_redis_key: str = Field(default="connect-agent-events", description="...this is.")
    event_stream_lag_s: float = Field(
        default=300.0, ge=0, description="How late an event may reach the stream."
    )
    event_lookback_hours: int = Field(default=12, ge=0, le=24 * 7)
    event_settle_s: float = Field(
        default=60.0, ge=0, description="A file changed more recently may still be written."
    )
    http: HttpSettings = HttpSettings(requests_per_second=5.0)

    @field_validator("instance_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not ARN.match(value):
            raise ValueError(
                "not an Amazon Connect instance ARN (arn:aws:connect:...:instance/...)"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        return known_channels(value)

    @property
    def region(self) -> str:
        return ARN.match(self.instance_arn).group(1)  # type: ignore[union-attr]

    @property
    def instance_id(self) -> str:
        return ARN.match(self.instance_arn).group(2)  # type: ignore[union-attr]

    @property
    def api_url(self) -> str:
        return (self.endpoint_url or f"https://connect.{self.region}.amazonaws.com").rstrip("/")


@dataclass
class _Connect:
    """One import's signed connection to the Amazon Connect API."""

    http: HttpClient
    base: str
    signer: SigV4Auth

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict:
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        self.signer.add_auth(request)
        return dict(request.headers.items())

    def call(self, method: str, path: str, **kwargs: Any) -> dict:
        response = self.http.request(method, self.base + path, sign=self.sign, **kwargs)
        return response.json() or {}

    def pages(self, method: str, path: str, key: str, **kwargs: Any) -> Iterator[dict]:
        """Every page of a NextToken-paged request; the token goes into the JSON body of a
        POST and into `nextToken` of a GET's query."""

        def fetch(token: str | None) -> dict:
            if method == "POST":
                body = {**kwargs["json_body"], **({"NextToken": token} if token else {})}
                return self.call(method, path, json_body=body)
            params = {**kwargs.get("params", {}), **({"nextToken": token} if token else {})}
            return self.call(method, path, params=params)

        for page in paginate(
            fetch,
            lambda page, _token: page.get("NextToken") or None,
            where=self.http.where(method, self.base + path),
        ):
            yield from page.get(key) or []


def _epoch(moment: datetime) -> int:
    return int(pd.Timestamp(moment).timestamp())


class AmazonConnectSource(SourceResource):
    """`vendor: amazon_connect` (see the module docstring)."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model: ClassVar[type[SourceSettings]] = AmazonConnectSettings
    secret_envs: ClassVar[dict[str, str]] = {
        "secret_access_key": "secret_access_key_env",
        "session_token": "session_token_env",  # optional: temporary credentials only
        "event_redis_url": "event_redis_url_env",  # optional: may hold a password
    }

    settings: AmazonConnectSettings
    secret_access_key: str
    session_token: str | None = None
    event_redis_url: str | None = None

    def _connect(self) -> _Connect:
        settings = self.settings
        http = HttpClient(
            integration_id=self.integration_id,
            vendor=VENDOR,
            settings=settings.http,
            secrets=[self.secret_access_key, self.session_token or ""],
            credential_hint=(
                f"the access key {settings.access_key_id!r}, its IAM permissions "
                "(connect:GetMetricDataV2, connect:ListQueues) and the secret in environment "
                f"variable {settings.secret_access_key_env}"
            ),
        )
        credentials = Credentials(
            settings.access_key_id, self.secret_access_key, self.session_token
        )
        return _Connect(http, settings.api_url, SigV4Auth(credentials, SERVICE, settings.region))

    # -- contacts -----------------------------------------------------------------------------
    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Queue and channel intervals whose start lies in [start, end)."""
        window = grid_window(start, end, self.interval_minutes, self.timezone)
        api = self._connect()
        stop = min(window[1], clock.now()) if window else None
        if window is None or stop <= window[0]:
            frame = contact_rows([], self.integration_id, self.interval_minutes, "")
            return Extract(frame=frame, description=f"{VENDOR}: nothing to ask for yet")
        queues = self._queues(api)
        ids = self.settings.queue_ids or sorted(queues)
        records: list[dict] = []
        rejected: list[dict] = []
        requests = 0
        span = timedelta(hours=self.settings.max_hours_per_request)
        for piece_start, piece_end in split_window(window[0], stop, span):
            for i in range(0, len(ids), 100):
                body = self._body(piece_start, piece_end, ids[i : i + 100])
                for result in api.pages("POST", "/metrics/data", "MetricResults", json_body=body):
                    self._read(result, start, end, records, rejected)
                requests += 1
        frame = contact_rows(records, self.integration_id, self.interval_minutes, "connect")
        if not frame.empty:
            frame["source_ref"] = [
                f"{ref} ({queues.get(queue, 'unknown queue')})"
                for ref, queue in zip(frame["source_ref"], frame["external_queue_id"], strict=True)
            ]
        return Extract(
            frame=frame,
            rejected=rejected_rows(rejected),
            description=f"{VENDOR} GetMetricDataV2, {len(ids)} queues, {requests} request(s)",
        )

    def _queues(self, api: _Connect) -> dict[str, str]:
        """Queue id -> name of the instance's standard queues."""
        return {
            q["Id"]: q.get("Name", "")
            for q in api.pages(
                "GET",
                f"/queues-summary/{urllib.parse.quote(self.settings.instance_id)}",
                "QueueSummaryList",
                params={"queueTypes": "STANDARD", "maxResults": 100},
            )
            if q.get("Id")
        }

    def _body(self, start: datetime, end: datetime, queues: list[str]) -> dict:
        return {
            "ResourceArn": self.settings.instance_arn,
            "StartTime": _epoch(start),
            "EndTime": _epoch(end),
            "Interval": {
                "TimeZone": self.timezone,
                "IntervalPeriod": PERIODS[self.interval_minutes],
            },
            "Filters": [{"FilterKey": "QUEUE", "FilterValues": queues}],
            "Groupings": ["QUEUE", "CHANNEL"],
            "Metrics": [{"Name": name} for name in METRICS],
            "MaxResults": self.settings.max_results,
        }

    def _read(
        self, result: dict, start: datetime, end: datetime, records: list, rejected: list
    ) -> None:
        dims = result.get("Dimensions") or {}
        interval = result.get("MetricInterval") or {}
        queue, channel = dims.get("QUEUE"), dims.get("CHANNEL")
        ref = f"GetMetricDataV2 queue {queue} channel {channel} start {interval.get('StartTime')}"
        try:
            begins = pd.Timestamp(float(interval["StartTime"]), unit="s", tz="UTC")
        except (KeyError, TypeError, ValueError):
            rejected.append(
                {"source_ref": ref, "row": result, "rules": ["MetricInterval.StartTime: missing"]}
            )
            return
        if not pd.Timestamp(start) <= begins < pd.Timestamp(end):
            return
        mapped = self.settings.channels.get(str(channel))
        if not queue or mapped is None:
            rule = (
                "Dimensions.QUEUE: missing"
                if not queue
                else (f"CHANNEL {channel!r}: no channel mapped (source.channels)")
            )
            rejected.append(
                {"source_ref": ref, "row": result, "rules": [rule], "partition_time": begins}
            )
            return
        record: dict[str, Any] = {
            "external_queue_id": queue,
            "channel": mapped,
            "interval_start": begins,
        }
        for item in result.get("Collections") or []:
            column = METRICS.get((item.get("Metric") or {}).get("Name"))
            if column is not None:
                record[column] = float(item.get("Value") or 0.0)
        records.append(record)

    # -- agent status -------------------------------------------------------------------------
    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Segments overlapping [start, end) from the agent event stream's records."""
        settings = self.settings
        since = pd.Timestamp(start) - pd.Timedelta(hours=settings.event_lookback_hours)
        if self.event_redis_url:
            import redis

            client = redis.Redis.from_url(self.event_redis_url, socket_timeout=30)
            where = f"Redis stream {settings.event_redis_key}"
            lag = pd.Timedelta(seconds=settings.event_stream_lag_s)
            try:
                events, rejected, failed = read_stream(
                    client, settings.event_redis_key, since, pd.Timestamp(end), lag
                )
            except (SourceError, redis.RedisError) as exc:
                raise SourceError(
                    f"integration {self.integration_id!r}: {VENDOR} {where}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            finally:
                client.close()
        else:
            folder = self._event_folder()
            where = folder.name
            events, rejected, failed = read_events(
                folder, since, pd.Timestamp(end), settings.event_settle_s
            )
        rows = segments_from_events(events, rejected)
        frame = overlapping(status_rows(rows, self.integration_id), start, end)
        return Extract(
            frame=frame,
            rejected=rejected_rows(rejected),
            description=f"{VENDOR} agent event stream, {len(events)} events from {where}",
            failed=[WindowFailure(start, end, reason) for reason in failed],
        )

    def _event_folder(self) -> Path:
        if not self.settings.event_folder:
            raise SourceError(
                f"integration {self.integration_id!r}: {VENDOR} agent status needs "
                "source.event_folder (where the agent event stream's records land) or "
                "source.event_redis_url_env"
            )
        folder = resolve(self.settings.event_folder)
        if not folder.is_dir():
            raise SourceError(
                f"integration {self.integration_id!r}: {VENDOR} event folder {folder} "
                "does not exist"
            )
        return folder


# -- the agent event stream -----------------------------------------------------------------
def json_records(text: str) -> Iterator[tuple[int, Any | None, str | None]]:
    """(offset, record, problem) for each JSON value in `text`: JSON lines, a JSON array, or
    objects concatenated without separators (how Firehose writes them). A value that cannot
    be read yields (offset, None, problem) and reading goes on at the next line."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            return
        try:
            value, after = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            following = text.find("\n", position)
            yield position, None, f"not JSON ({exc.msg})"
            if following < 0:
                return
            position = following + 1
            continue
        if isinstance(value, list):
            for item in value:
                yield position, item, None
        else:
            yield position, value, None
        position = after


def _candidate_files(folder: Path, since: pd.Timestamp, until: pd.Timestamp) -> list[Path]:
    """Files under `folder`; in a `YYYY/MM/DD/HH/` layout only the hours that can hold
    events of [since, until) (an hour either side: delivery lags)."""
    low, high = since - pd.Timedelta(hours=1), until + pd.Timedelta(hours=1)
    chosen = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        match = HOUR_FOLDER.match(path.relative_to(folder).as_posix())
        if match:
            hour = pd.Timestamp(*map(int, match.groups()[:4]), tz="UTC")
            if not low <= hour < high:
                continue
        chosen.append(path)
    return chosen


def collect_events(
    records: Iterable[tuple[str, Any, str | None]], since: pd.Timestamp, until: pd.Timestamp
) -> tuple[list[dict], list[dict]]:
    """Status events (LOGIN, STATE_CHANGE, LOGOUT) with EventTimestamp in [since, until),
    each EventId once, in time order; and the records that could not be read. `records` are
    (where, record, problem) as a reader found them."""
    events: dict[str, dict] = {}
    rejected: list[dict] = []
    for ref, record, problem in records:
        if problem is None and not isinstance(record, dict):
            problem = "not a JSON object"
        if problem is not None:
            rejected.append({"source_ref": ref, "row": str(record)[:300], "rules": [problem]})
            continue
        if record.get("EventType") not in STATUS_EVENTS:
            continue  # HEART_BEAT and anything newer: no change of status
        moment = pd.to_datetime(record.get("EventTimestamp"), utc=True, errors="coerce")
        if pd.isna(moment):
            rejected.append(
                {"source_ref": ref, "row": record, "rules": ["EventTimestamp: not a timestamp"]}
            )
            continue
        if not since <= moment < until:
            continue
        identity = str(record.get("EventId") or ref)
        events.setdefault(identity, {**record, "_at": moment, "_ref": ref})
    return sorted(events.values(), key=lambda e: e["_at"]), rejected


def read_events(
    folder: Path, since: pd.Timestamp, until: pd.Timestamp, settle_s: float
) -> tuple[list[dict], list[dict], list[str]]:
    """Status events from the files under `folder` (see `collect_events`), and the files
    too fresh to trust."""
    fresh: list[str] = []
    now = time.time()

    def records() -> Iterator[tuple[str, Any, str | None]]:
        for path in _candidate_files(folder, since, until):
            if now - path.stat().st_mtime < settle_s:
                fresh.append(
                    f"{VENDOR} event file {path.name} changed less than {settle_s:.0f} s ago"
                )
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for offset, record, problem in json_records(text):
                shown = text[offset : offset + 300] if problem else record
                yield f"{path.name} offset {offset}", shown, problem

    events, rejected = collect_events(records(), since, until)
    return events, rejected, fresh


def read_stream(
    client: Any, key: str, since: pd.Timestamp, until: pd.Timestamp, lag: pd.Timedelta
) -> tuple[list[dict], list[dict], list[str]]:
    """Status events from a Redis stream standing in for the Kinesis stream: entries whose
    ID (the arrival time in milliseconds) lies within `lag` of [since, until), read with
    XRANGE in pages, never consumed; the record is the entry's `data` field. A window whose
    entries the stream has already trimmed is reported, not imported half."""
    low = int((since - lag).timestamp() * 1000)
    high = int((until + lag).timestamp() * 1000)
    info = client.xinfo_stream(key)  # a missing key is a ResponseError: "no such key"
    failed = []
    if _trimmed_after(info, low):
        failed.append(
            f"{VENDOR} event stream {key!r} no longer holds every entry after "
            f"{pd.Timestamp(low, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC (trimmed)"
        )

    def fetch(cursor: str | None) -> list:
        return client.xrange(key, min=cursor or str(low), max=str(high), count=STREAM_PAGE)

    def following(page: list, _cursor: str | None) -> str | None:
        return f"({_text(page[-1][0])}" if len(page) == STREAM_PAGE else None

    def records() -> Iterator[tuple[str, Any, str | None]]:
        pages = paginate(fetch, following, where=f"{VENDOR} event stream {key!r}")
        for page in pages:
            for entry_id, fields in page:
                ref = f"stream {key} entry {_text(entry_id)}"
                raw = fields.get(b"data", fields.get("data"))
                try:
                    yield ref, json.loads(raw), None
                except (TypeError, ValueError) as exc:
                    yield ref, raw, f"data: not JSON ({exc})"

    events, rejected = collect_events(records(), since, until)
    return events, rejected, failed


def _trimmed_after(info: dict, low_ms: int) -> bool:
    """Whether the stream has dropped entries at or after `low_ms`: deleted ones (XDEL,
    `max-deleted-entry-id`) or trimmed ones (XTRIM / MAXLEN: fewer entries than were added,
    and the oldest left is newer than `low_ms`)."""

    def millis(value: Any) -> int:
        return int(_text(value or "0-0").split("-")[0])

    if millis(info.get("max-deleted-entry-id")) >= low_ms:
        return True
    removed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
    return removed and millis(info.get("recorded-first-entry-id")) > low_ms


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _activity(snapshot: dict) -> str | None:
    status = ((snapshot.get("AgentStatus") or {}).get("Name")) or None
    contacts = snapshot.get("Contacts") or []
    if status and contacts and contacts[0].get("State"):
        return f"{status} / {contacts[0]['State']}"
    return status


def segments_from_events(events: list[dict], rejected: list[dict]) -> list[dict]:
    """Each agent's segments from its status events in time order (see the module
    docstring); events that name no agent or no status go to `rejected`."""
    by_agent: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        snapshot = event.get("CurrentAgentSnapshot") or {}
        user = (snapshot.get("Configuration") or {}).get("Username")
        if not isinstance(user, str) or not user:
            rejected.append(
                {
                    "source_ref": event["_ref"],
                    "row": {k: v for k, v in event.items() if not k.startswith("_")},
                    "rules": ["CurrentAgentSnapshot.Configuration.Username: missing"],
                    "partition_time": event["_at"],
                }
            )
            continue
        by_agent[user].append(event)
    rows: list[dict] = []
    for user, agent_events in by_agent.items():
        current: dict | None = None
        for event in agent_events:
            moment = event["_at"]
            activity = None
            if event["EventType"] != "LOGOUT":
                activity = _activity(event.get("CurrentAgentSnapshot") or {})
            if current is not None and activity == current["external_activity"]:
                continue  # same activity: the segment goes on
            if current is not None:
                current["end_utc"] = moment
                rows.append(current)
                current = None
            if activity is not None:
                current = {
                    "user_identifier": user,
                    "external_activity": activity,
                    "start_utc": moment,
                    "end_utc": None,
                    "source_ref": event["_ref"],
                }
        if current is not None:
            rows.append(current)
    return rows
