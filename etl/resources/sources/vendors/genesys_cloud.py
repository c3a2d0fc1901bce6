"""`vendor: genesys_cloud`: contact intervals and agent status from the Genesys Cloud API.

Sources. The Genesys developer center pages (developer.genesys.cloud, "API Explorer") were not
in the documentation we could search, so the request and answer shapes below follow the
official Python SDK's model pages, which are generated from the same API definition:
MyPureCloud/platform-client-sdk-python, build/docs/<Model>.md (models named per request).
The developer center is where a maintainer should check them:
https://developer.genesys.cloud/analyticsdatamanagement/analytics/ (unverified address).

- Token: OAuth client-credentials grant (RFC 6749 section 4.4), `POST
  https://login.<region>/oauth/token` with HTTP Basic `client_id:client_secret` and
  `grant_type=client_credentials`; answer `access_token`, `expires_in`. The OAuth client must
  be enabled for the Client Credentials grant (genesysr R package, `client_login` docs).
- Contacts: `POST /api/v2/analytics/conversations/aggregates/query` with `interval`
  ("start/end", ISO-8601), `granularity` (PT15M, PT30M or PT1H, the integration's interval),
  `timeZone` ("used to calculate response intervals (this allows resolving DST changes)"),
  `groupBy` [queueId, mediaType] and `metrics`. Answer: `results[]` of `group` (dimension ->
  value) and `data[]` of `interval` and `metrics[]` (`metric`, `stats` with `count`, `sum`,
  `numerator`, ...). Durations (`t*` metrics) are milliseconds. Models:
  ConversationAggregationQuery, ConversationAggregateQueryResponse,
  ConversationAggregateDataContainer, StatisticalResponse, StatisticalSummary.
  Metrics used: nOffered (count), tAnswered (count), tAbandon (count), tHandle (sum),
  tTalkComplete, tHeldComplete, tAcw (sums) and oServiceLevel (numerator).
- Queue names: `GET /api/v2/routing/queues?pageSize=&pageNumber=`, paged (`entities`,
  `pageCount`), the SDK's QueueEntityListing.
- Agent status: `POST /api/v2/analytics/users/details/query` with `interval`, `order` and
  `paging` {pageSize, pageNumber} ("Default page size is 25"); answer `userDetails[]`
  (`userId`, `primaryPresence[]` with `startTime`, `endTime`, `systemPresence`;
  `routingStatus[]` with `startTime`, `endTime`, `routingStatus`) and `totalHits`. Models:
  UserDetailsQuery, AnalyticsUserDetailsQueryResponse, AnalyticsUserDetail,
  AnalyticsUserPresenceRecord, AnalyticsRoutingStatusRecord.
- User names: `GET /api/v2/users?id=...&state=any`, paged like queues (UserEntityListing).

Not found at all: the longest interval one aggregates or details query accepts. Queries are
cut into pieces of `max_interval_hours` (7 days by default); a smaller value is always safe.

Genesys reprocesses data up to about 48 hours later, so a genesys_cloud integration imports
with a revision window of at least 72 hours (the default for this vendor; a smaller value is
a config error).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.plumbing.frames import (
    contact_rows,
    extract,
    known_channels,
    overlapping,
    status_rows,
)
from etl.resources.sources.plumbing.http import HttpClient, HttpSettings
from etl.resources.sources.plumbing.oauth import ClientCredentials, client_credentials_session
from etl.resources.sources.plumbing.paging import numbered_pages
from etl.resources.sources.plumbing.timegrid import grid_window, split_window

if TYPE_CHECKING:
    from etl.config import Integration

VENDOR = "Genesys Cloud"
AGGREGATES = "/api/v2/analytics/conversations/aggregates/query"
USER_DETAILS = "/api/v2/analytics/users/details/query"
QUEUES = "/api/v2/routing/queues"
USERS = "/api/v2/users"
GRANULARITY = {15: "PT15M", 30: "PT30M", 60: "PT1H"}
# Metric -> (canonical column, statistic, factor). Durations come in milliseconds.
METRICS: dict[str, tuple[str, str, float]] = {
    "nOffered": ("offered", "count", 1.0),
    "tAnswered": ("answered", "count", 1.0),
    "tAbandon": ("abandoned", "count", 1.0),
    "tHandle": ("handle_time_s", "sum", 0.001),
    "tTalkComplete": ("talk_time_s", "sum", 0.001),
    "tHeldComplete": ("hold_time_s", "sum", 0.001),
    "tAcw": ("acw_time_s", "sum", 0.001),
    "oServiceLevel": ("answered_in_sl", "numerator", 1.0),
}
DEFAULT_MEDIA = {
    "voice": "calls",
    "callback": "calls",
    "chat": "chats",
    "message": "chats",
    "email": "emails",
}
USER_FIELDS = ("username", "email", "name", "id")


class GenesysNotificationSettings(dg.Config):
    """`source.notifications`: real-time agent status from the Notifications API
    (`wfm-etl genesys-listen`, etl/resources/sources/vendors/genesys_notifications.py)."""

    user_ids: list[str] = Field(
        default=[], description="Only these users' status (default: every active user)."
    )
    max_topics_per_channel: int = Field(
        default=1000, ge=2, le=1000, description="Genesys allows 1,000 topics per channel."
    )
    heartbeat_timeout_s: float = Field(
        default=75.0,
        gt=0,
        description="Reconnect when the socket sends nothing (not even its 30-s heartbeat) "
        "this long.",
    )
    renew_before_s: float = Field(
        default=600.0, ge=0, description="Open a new channel this long before one expires."
    )
    reconnect_initial_s: float = Field(default=1.0, ge=0, description="first reconnect wait")
    reconnect_max_s: float = Field(default=60.0, ge=0, description="longest reconnect wait")


class GenesysCloudSettings(SourceSettings):
    """`source:` settings of `vendor: genesys_cloud`."""

    client_id: str = Field(description="OAuth client (client credentials grant) id.")
    client_secret_env: str = Field(description="Environment variable holding the secret.")
    region: str = Field(
        default="mypurecloud.com",
        description="Genesys Cloud region domain, e.g. mypurecloud.de, mypurecloud.ie.",
    )
    base_url: str | None = Field(default=None, description="API URL (default api.<region>).")
    login_url: str | None = Field(default=None, description="Login URL (default login.<region>).")
    queue_ids: list[str] = Field(default=[], description="Only these queues (default: all).")
    media_channels: dict[str, str] = Field(
        default=DEFAULT_MEDIA, description="Genesys mediaType -> channel."
    )
    ignored_media_types: list[str] = Field(
        default=["cobrowse", "screenshare", "video"],
        description="Media types that are not contacts of their own (skipped, not rejected).",
    )
    user_identifier: str = Field(
        default="username",
        description="User field agents are matched on: " + ", ".join(USER_FIELDS),
    )
    max_interval_hours: int = Field(default=168, ge=1, le=24 * 31)
    page_size: int = Field(default=100, ge=1, le=100)
    http: HttpSettings = HttpSettings()
    notifications: GenesysNotificationSettings | None = Field(
        default=None, description="Real-time agent status (wfm-etl genesys-listen)."
    )
    freshness_warn_seconds: int = Field(
        default=300,
        ge=1,
        description="With notifications: the freshness check warns when nothing landed this long.",
    )

    @field_validator("user_identifier")
    @classmethod
    def _known_user_field(cls, value: str) -> str:
        if value not in USER_FIELDS:
            raise ValueError(f"must be one of {', '.join(USER_FIELDS)}")
        return value

    @field_validator("media_channels")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        return known_channels(value)

    @property
    def api_url(self) -> str:
        return (self.base_url or f"https://api.{self.region}").rstrip("/")

    @property
    def token_url(self) -> str:
        return (self.login_url or f"https://login.{self.region}").rstrip("/") + "/oauth/token"


@dataclass
class _Api:
    """One import's connection: the HTTP client, the token, the base URL."""

    http: HttpClient
    auth: ClientCredentials
    base: str

    def post(self, path: str, body: dict) -> Any:
        return self.auth.request("POST", self.base + path, json_body=body).json()

    def get(self, path: str, params: list[tuple[str, Any]]) -> Any:
        return self.auth.request("GET", self.base + path, params=params).json()

    def pages(self, path: str, params: list[tuple[str, Any]], size: int) -> list[dict]:
        """Every entity of a paged GET (`entities`, `pageCount`)."""

        def last(page: dict, number: int) -> bool:
            count = page.get("pageCount")
            return not page.get("entities") or count is None or number >= int(count)

        pages = numbered_pages(
            lambda number: self.get(path, [*params, ("pageSize", size), ("pageNumber", number)]),
            last,
            where=self.http.where("GET", self.base + path),
        )
        return [entity for page in pages for entity in page.get("entities") or []]


def _iso(moment: datetime) -> str:
    return pd.Timestamp(moment).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _ts(value: str | None) -> pd.Timestamp | None:
    return None if value in (None, "") else pd.Timestamp(value).tz_convert("UTC")


class GenesysCloudSource(SourceResource):
    """`vendor: genesys_cloud`: Genesys Cloud analytics API (see the module docstring)."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud",)
    timing: ClassVar[tuple[str, ...]] = ("batch", "real-time")

    @classmethod
    def real_time_data(cls, integration: Integration) -> tuple[str, ...]:
        """Agent status, when the notifications consumer is configured (`genesys-listen`)."""
        if integration.source.get("notifications") is None:
            return ()
        return tuple(kind for kind in integration.data if kind == "agent_status")

    settings_model: ClassVar[type[SourceSettings]] = GenesysCloudSettings
    min_revision_window_hours: ClassVar[int] = 72

    secret_envs: ClassVar[dict[str, str]] = {"client_secret": "client_secret_env"}
    settings: GenesysCloudSettings
    client_secret: str

    def _api(self) -> _Api:
        http, auth = client_credentials_session(self, VENDOR, self.settings.token_url)
        return _Api(http, auth, self.settings.api_url)

    # -- contacts -----------------------------------------------------------------------------
    def _aggregate_body(self, start: datetime, end: datetime) -> dict:
        body: dict[str, Any] = {
            "interval": f"{_iso(start)}/{_iso(end)}",
            "granularity": GRANULARITY[self.interval_minutes],
            "timeZone": self.timezone,
            "groupBy": ["queueId", "mediaType"],
            "metrics": list(METRICS),
        }
        if self.settings.queue_ids:
            body["filter"] = {
                "type": "or",
                "predicates": [
                    {"type": "dimension", "dimension": "queueId", "operator": "matches", "value": q}
                    for q in self.settings.queue_ids
                ],
            }
        return body

    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Queue intervals whose start lies in [start, end), summed per channel."""
        window = grid_window(start, end, self.interval_minutes, self.timezone)
        if window is None:
            return extract(
                contact_rows([], self.integration_id, self.interval_minutes, ""), [], VENDOR
            )
        api = self._api()
        records: list[dict] = []
        rejected: list[dict] = []
        queries = 0
        span = timedelta(hours=self.settings.max_interval_hours)
        for piece_start, piece_end in split_window(*window, span):
            answer = api.post(AGGREGATES, self._aggregate_body(piece_start, piece_end))
            queries += 1
            self._read_aggregates(answer, records, rejected)
        names = self._queue_names(api) if records else {}
        frame = contact_rows(records, self.integration_id, self.interval_minutes, "aggregates")
        if names and not frame.empty:
            frame["source_ref"] = [
                f"{ref} ({names.get(queue, 'unknown queue')})"
                for ref, queue in zip(frame["source_ref"], frame["external_queue_id"], strict=True)
            ]
        description = (
            f"{VENDOR} conversation aggregates, {queries} quer{'y' if queries == 1 else 'ies'}, "
            f"{GRANULARITY[self.interval_minutes]} in {self.timezone}"
        )
        return extract(frame, rejected, description)

    def _read_aggregates(self, answer: dict, records: list[dict], rejected: list[dict]) -> None:
        channels = self.settings.media_channels
        ignored = set(self.settings.ignored_media_types)
        for result in answer.get("results") or []:
            group = result.get("group") or {}
            queue, media = group.get("queueId"), group.get("mediaType")
            if not queue or media in ignored:
                continue  # not queue workload (no queue), or not a contact of its own
            for bucket in result.get("data") or []:
                interval = str(bucket.get("interval", ""))
                begins = _ts(interval.split("/")[0]) if "/" in interval else None
                ref = f"aggregates queue {queue} mediaType {media} interval {interval}"
                problem = None
                if begins is None:
                    problem = f"interval {interval!r}: not an ISO-8601 start/end"
                elif media not in channels:
                    problem = (
                        f"mediaType {media!r}: no channel mapped (add it to "
                        "source.media_channels, or to source.ignored_media_types)"
                    )
                if problem:
                    rejected.append(
                        {
                            "source_ref": ref,
                            "row": {"group": group, **bucket},
                            "rules": [problem],
                            "partition_time": begins,
                        }
                    )
                    continue
                record: dict[str, Any] = {
                    "external_queue_id": queue,
                    "channel": channels[media],
                    "interval_start": begins,
                }
                for metric in bucket.get("metrics") or []:
                    target = METRICS.get(metric.get("metric"))
                    if target is None:
                        continue
                    column, statistic, factor = target
                    value = (metric.get("stats") or {}).get(statistic)
                    if value is not None:
                        record[column] = float(value) * factor
                records.append(record)

    def _queue_names(self, api: _Api) -> dict[str, str]:
        return {
            q["id"]: q.get("name", "")
            for q in api.pages(QUEUES, [], self.settings.page_size)
            if "id" in q
        }

    # -- agent status -------------------------------------------------------------------------
    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Segments overlapping [start, end): presence, and routing status while on queue."""
        api = self._api()
        presence: dict[str, set] = defaultdict(set)
        routing: dict[str, set] = defaultdict(set)
        span = timedelta(hours=self.settings.max_interval_hours)
        for piece_start, piece_end in split_window(start, end, span):
            # Records overlapping two pieces come twice: the sets keep them once.
            for detail in self._user_details(api, piece_start, piece_end):
                user = detail.get("userId")
                if not user:
                    continue
                for rec in detail.get("primaryPresence") or []:
                    presence[user].add(
                        (rec.get("startTime"), rec.get("endTime"), rec.get("systemPresence"))
                    )
                for rec in detail.get("routingStatus") or []:
                    routing[user].add(
                        (rec.get("startTime"), rec.get("endTime"), rec.get("routingStatus"))
                    )
        users = sorted(set(presence) | set(routing))
        identifiers = self._user_identifiers(api, users) if users else {}
        segments: list[dict] = []
        for user in users:
            timeline = combine_presence(
                [_record(r) for r in presence[user]], [_record(r) for r in routing[user]]
            )
            segments += [
                {
                    "user_identifier": identifiers.get(user),
                    "external_activity": activity,
                    "start_utc": seg_start,
                    "end_utc": seg_end,
                    "source_ref": f"users/details userId {user} {seg_start:%Y-%m-%dT%H:%M:%SZ}",
                    "user_id": user,
                }
                for seg_start, seg_end, activity in timeline
            ]
        frame = overlapping(status_rows(segments, self.integration_id), start, end)
        unknown = frame["user_identifier"].isna()
        rejected = [
            {
                "source_ref": row.source_ref,
                "row": {
                    "userId": row.user_id,
                    "activity": row.external_activity,
                    "startTime": row.start_utc.isoformat(),
                    "endTime": None if pd.isna(row.end_utc) else row.end_utc.isoformat(),
                },
                "rules": [
                    f"userId {row.user_id}: no {self.settings.user_identifier} "
                    "(user not returned by /api/v2/users)"
                ],
                "partition_time": max(row.start_utc, pd.Timestamp(start)),
            }
            for row in frame[unknown].itertuples()
        ]
        frame = frame[~unknown].drop(columns=["user_id"]).reset_index(drop=True)
        return extract(frame, rejected, f"{VENDOR} user details, {len(users)} users")

    def _user_details(self, api: _Api, start: datetime, end: datetime) -> list[dict]:
        size = self.settings.page_size
        interval = f"{_iso(start)}/{_iso(end)}"

        def last(page: dict, number: int) -> bool:
            total = page.get("totalHits")
            found = len(page.get("userDetails") or [])
            return found < size or (total is not None and number * size >= int(total))

        pages = numbered_pages(
            lambda number: api.post(
                USER_DETAILS,
                {
                    "interval": interval,
                    "order": "asc",
                    "paging": {"pageSize": size, "pageNumber": number},
                },
            ),
            last,
            where=api.http.where("POST", api.base + USER_DETAILS),
        )
        return [detail for page in pages for detail in page.get("userDetails") or []]

    def _user_identifiers(self, api: _Api, users: list[str]) -> dict[str, str]:
        """userId -> the configured identifier (user name by default), exactly as stored."""
        field = self.settings.user_identifier
        found: dict[str, str] = {}
        for i in range(0, len(users), 100):
            batch = users[i : i + 100]
            params = [("id", u) for u in batch] + [("state", "any")]
            for user in api.pages(USERS, params, self.settings.page_size):
                value = user.get(field)
                if user.get("id") in batch and isinstance(value, str) and value != "":
                    found[user["id"]] = value
        return found


def _record(raw: tuple) -> tuple[pd.Timestamp, pd.Timestamp | None, str]:
    begins, ends, label = raw
    parsed = _ts(begins)
    if parsed is None:
        raise SourceError(f"{VENDOR} user details: a record without startTime: {raw!r}")
    return parsed, _ts(ends), str(label)


def combine_presence(
    presence: list[tuple[pd.Timestamp, pd.Timestamp | None, str]],
    routing: list[tuple[pd.Timestamp, pd.Timestamp | None, str]],
) -> list[tuple[pd.Timestamp, pd.Timestamp | None, str]]:
    """One agent's timeline from presence and routing-status records.

    The activity is the system presence (AVAILABLE, BREAK, MEAL, OFFLINE, ...), and while the
    agent is ON_QUEUE, the routing status too ("ON_QUEUE/IDLE", "ON_QUEUE/INTERACTING", ...),
    because that is what adherence needs. A record without end is still open (end None).
    Consecutive pieces with the same activity are merged; time without presence is a gap.
    """
    points = sorted({p[0] for p in presence + routing} | {p[1] for p in presence + routing if p[1]})
    if not points:
        return []

    def covering(records, moment):
        hits = [r for r in records if r[0] <= moment and (r[1] is None or moment < r[1])]
        return max(hits, key=lambda r: r[0])[2] if hits else None

    pieces: list[list] = []
    bounds = [*points, None]
    for begins, ends in itertools.pairwise(bounds):
        state = activity_of(covering(presence, begins), covering(routing, begins))
        if state is None:
            continue
        if pieces and pieces[-1][2] == state and pieces[-1][1] == begins:
            pieces[-1][1] = ends
        else:
            pieces.append([begins, ends, state])
    return [(p[0], p[1], p[2]) for p in pieces]


def activity_of(presence: str | None, routing: str | None) -> str | None:
    """The activity of a system presence and a routing status: the presence, and while on
    queue the routing status too (`ON_QUEUE/IDLE`). The analytics import and the real-time
    notifications both name activities with it, so both give the same segments."""
    if presence is None:
        return None
    if presence == "ON_QUEUE":
        return f"ON_QUEUE/{routing}" if routing else "ON_QUEUE"
    return presence
