"""`vendor: vonage`: queue intervals and agent status from the Vonage Contact Center (VCC,
formerly NewVoiceMedia) Insights Stats API.

What we followed, from the VCC API documentation (docs-vcc.atlassian.net, space VCCA):

- Authentication API: `POST https://{region}.cc.vonage.com/Auth/connect/token` (regions
  emea, nam, apac) with form fields `grant_type=client_credentials`, `client_id`,
  `client_secret` and `scope=stats`; the answer has `access_token` and `expires_in`
  ("always 7200", two hours). A token that stops working early is refreshed once on 401.
- Insights Stats API requests: `Accept: application/vnd.newvoicemedia.v3+json`, bearer
  token; base URL as in the documentation's examples, `https://{region}.api.newvoicemedia
  .com/stats` (`base_url` overrides it). "Request time windows are limited to 31 days for
  endpoints /agent-activities, /interactions" (400 "Request window size limit exceeded 31
  days"): windows are cut into pieces of at most `max_days_per_request`.
- `GET /agent-activities?start=&end=&include=&agentId=`: items with `agentId`, `type`
  (Presence, Workload, Interaction), `category`, `name`, `start` (ISO 8601 with
  milliseconds), `duration` (milliseconds; null while the activity goes on). We read the
  Presence items: they are the agent's state (Ready, Away, LoggedOut, ... with the custom
  state's `name`). Lists come as `meta` {page, count, pageCount, totalCount} and `items`;
  pages are asked for with `page` and `limit` (as the other VCC APIs document).
- `GET /interactions?start=&end=&include=`: items with `guid`, `medium` (Phone, Email,
  ...), `direction` (Inbound, Outbound, Internal), `start`, `duration`, `serviceName`,
  `channels[]` with `party.role` (External, Agent, ...) and `events[]` of `type`
  (Ringing, Connected, ...), `offset` and `duration` in milliseconds ("Get a single
  interaction" page). The API has no interval aggregates: we count each inbound interaction
  in the interval of its `start`, under its `serviceName`.
- `upTo`: the documentation recommends polling with `start` set to the previous answer's
  `upTo`, and warns that this "can result in duplicate items being returned across search
  windows". We continue from `upTo` until the requested end is covered and keep each item
  once (by its identity). Where `upTo` stops short of the end, that part is reported as not
  delivered (the hours fail and are retried) rather than imported half.

Assumed where nothing says: `upTo` sits at the top level of the answer (or in `meta`);
an interaction is answered when an Agent channel has a `Connected` event; abandoned when
it is not answered; talk, hold and wrap time are the durations of the agent channels'
`Connected`, `Held` and `Wrap` events (`talk_events`, `hold_events`, `wrap_events`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, field_validator

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
from etl.resources.sources.plumbing.oauth import ClientCredentials, client_credentials_session
from etl.resources.sources.plumbing.paging import numbered_pages
from etl.resources.sources.plumbing.timegrid import floor_to_grid, split_window

VENDOR = "Vonage Contact Center"
ACCEPT = "application/vnd.newvoicemedia.v3+json"
DEFAULT_MEDIA = {
    "Phone": "calls",
    "Email": "emails",
    "Chat": "chats",
    "Sms": "chats",
    "Case": "tickets",
    "Social": "social",
}
MAX_ROUNDS = 1000  # upTo continuations per piece before we call it a loop


class VonageSettings(SourceSettings):
    """`source:` settings of `vendor: vonage`."""

    client_id: str = Field(description="API credentials' client id (scope stats).")
    client_secret_env: str = Field(description="Environment variable holding the secret.")
    region: Literal["emea", "nam", "apac"] = "emea"
    base_url: str | None = Field(default=None, description="Insights Stats API URL.")
    auth_url: str | None = Field(default=None, description="Token URL (default by region).")
    scope: str = "stats"
    max_days_per_request: int = Field(default=31, ge=1, le=31)
    page_size: int = Field(default=1000, ge=1, le=5000)
    status_lookback_hours: int = Field(
        default=12, ge=0, le=24 * 7, description="Activities are listed by start: look back."
    )
    activity_field: Literal["category", "name"] = Field(
        default="category", description="Presence field that names the activity."
    )
    media_channels: dict[str, str] = DEFAULT_MEDIA
    talk_events: list[str] = ["Connected"]
    hold_events: list[str] = ["Held"]
    wrap_events: list[str] = ["Wrap"]
    http: HttpSettings = HttpSettings()

    @field_validator("media_channels")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        return known_channels(value)

    @property
    def api_url(self) -> str:
        return (self.base_url or f"https://{self.region}.api.newvoicemedia.com/stats").rstrip("/")

    @property
    def token_url(self) -> str:
        return self.auth_url or f"https://{self.region}.cc.vonage.com/Auth/connect/token"


def _iso(moment: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(moment).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ts(value: Any) -> pd.Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return pd.Timestamp(value).tz_convert("UTC")
    except (ValueError, TypeError):
        return None


@dataclass
class _Stats:
    """One import's connection to the Insights Stats API."""

    http: HttpClient
    auth: ClientCredentials
    base: str
    page_size: int

    def window(self, path: str, start: datetime, end: datetime) -> tuple[list[dict], Any]:
        """Every item of one request window, and the answer's `upTo`."""
        url = f"{self.base}/{path}"
        up_to: list[Any] = []

        def fetch(number: int) -> dict:
            params = {
                "start": _iso(start),
                "end": _iso(end),
                "include": "Started",
                "page": number,
                "limit": self.page_size,
            }
            body = self.auth.request("GET", url, params=params, headers={"Accept": ACCEPT}).json()
            body = body or {}
            up_to.append(body.get("upTo", (body.get("meta") or {}).get("upTo")))
            return body

        def last(body: dict, number: int) -> bool:
            count = (body.get("meta") or {}).get("pageCount")
            return not body.get("items") or count is None or number >= int(count)

        pages = numbered_pages(fetch, last, where=self.http.where("GET", url))
        items = [item for body in pages for item in body.get("items") or []]
        return items, up_to[0] if up_to else None

    def items(
        self, path: str, start: datetime, end: datetime, key: Callable[[dict], Any], span: timedelta
    ) -> tuple[list[dict], list[WindowFailure]]:
        """Items of [start, end) in pieces of at most `span`, following `upTo` within each
        piece, each item once; and the parts the API had not processed yet."""
        found: dict[Any, dict] = {}
        failed: list[WindowFailure] = []
        for piece_start, piece_end in split_window(start, end, span):
            cursor = pd.Timestamp(piece_start)
            stop = pd.Timestamp(piece_end)
            for _ in range(MAX_ROUNDS):
                items, raw = self.window(path, cursor.to_pydatetime(), piece_end)
                for item in items:
                    found.setdefault(key(item), item)
                up_to = _ts(raw) if raw is not None else stop
                if up_to is None:
                    raise SourceError(
                        f"{self.http.where('GET', f'{self.base}/{path}')}: upTo {raw!r} is "
                        "not a date and time"
                    )
                if up_to >= stop:
                    break
                if up_to <= cursor:
                    failed.append(
                        WindowFailure(
                            up_to.to_pydatetime(),
                            piece_end,
                            f"{VENDOR} /{path}: processed only up to {_iso(up_to)} (upTo); "
                            "the rest is imported on a later run",
                        )
                    )
                    break
                cursor = up_to
            else:
                raise SourceError(f"{VENDOR} /{path}: upTo did not reach {_iso(stop)}")
        return list(found.values()), failed


class VonageSource(SourceResource):
    """`vendor: vonage`: Vonage Contact Center Insights Stats API (see the module docstring)."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model: ClassVar[type[SourceSettings]] = VonageSettings
    secret_envs: ClassVar[dict[str, str]] = {"client_secret": "client_secret_env"}

    settings: VonageSettings
    client_secret: str

    def _stats(self) -> _Stats:
        http, auth = client_credentials_session(
            self,
            VENDOR,
            self.settings.token_url,
            scope=self.settings.scope,
            credentials_in="body",
            credential="the API credentials",
        )
        return _Stats(http, auth, self.settings.api_url, self.settings.page_size)

    @property
    def _span(self) -> timedelta:
        return timedelta(days=self.settings.max_days_per_request)

    # -- contacts -----------------------------------------------------------------------------
    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Inbound interactions per service and channel, in the interval of their start."""
        items, failed = self._stats().items(
            "interactions", start, end, key=lambda i: i.get("guid") or id(i), span=self._span
        )
        inbound = [i for i in items if i.get("direction") == "Inbound"]
        starts = pd.Series([_ts(i.get("start")) for i in inbound], dtype="datetime64[ns, UTC]")
        intervals = floor_to_grid(starts, self.interval_minutes, self.timezone)
        records: list[dict] = []
        rejected: list[dict] = []
        for item, moment, interval in zip(inbound, starts, intervals, strict=True):
            self._count(item, moment, interval, start, end, records, rejected)
        frame = contact_rows(records, self.integration_id, self.interval_minutes, "vonage")
        return Extract(
            frame=frame,
            rejected=rejected_rows(rejected),
            description=f"{VENDOR} interactions, {len(items)} read",
            failed=failed,
        )

    def _count(
        self,
        item: dict,
        moment: pd.Timestamp,
        interval: pd.Timestamp,
        start: datetime,
        end: datetime,
        records: list[dict],
        rejected: list[dict],
    ) -> None:
        ref = f"interactions guid {item.get('guid')}"
        if pd.isna(moment):
            rejected.append(
                {"source_ref": ref, "row": item, "rules": [f"start: {item.get('start')!r}"]}
            )
            return
        if not pd.Timestamp(start) <= interval < pd.Timestamp(end):
            return
        problems = []
        channel = self.settings.media_channels.get(str(item.get("medium")))
        if channel is None:
            problems.append(
                f"medium {item.get('medium')!r}: no channel mapped (source.media_channels)"
            )
        queue = item.get("serviceName")
        if not queue:
            problems.append("serviceName: missing (the service the interaction was routed by)")
        try:
            talk, hold, wrap, answered = self._agent_time(item)
        except (TypeError, ValueError) as exc:
            problems.append(f"channels: {exc}")
        if problems:
            rejected.append(
                {"source_ref": ref, "row": item, "rules": problems, "partition_time": moment}
            )
            return
        records.append(
            {
                "external_queue_id": str(queue),
                "channel": channel,
                "interval_start": interval,
                "offered": 1,
                "answered": int(answered),
                "abandoned": int(not answered),
                "handle_time_s": talk + hold + wrap,
                "talk_time_s": talk,
                "hold_time_s": hold,
                "acw_time_s": wrap,
            }
        )

    def _agent_time(self, item: dict) -> tuple[float, float, float, bool]:
        """Talk, hold and wrap seconds on the interaction's agent channels, and whether an
        agent was connected at all."""
        settings = self.settings
        talk = hold = wrap = 0.0
        answered = False
        for channel in item.get("channels") or []:
            if ((channel.get("party") or {}).get("role")) != "Agent":
                continue
            for event in channel.get("events") or []:
                kind = event.get("type")
                seconds = float(event.get("duration") or 0) / 1000
                if seconds < 0:
                    raise ValueError(f"event {kind} has a negative duration")
                if kind in settings.talk_events:
                    talk += seconds
                    answered = True
                elif kind in settings.hold_events:
                    hold += seconds
                elif kind in settings.wrap_events:
                    wrap += seconds
        return talk, hold, wrap, answered

    # -- agent status -------------------------------------------------------------------------
    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Presence segments overlapping [start, end), agents named by their agent id."""
        lookback = timedelta(hours=self.settings.status_lookback_hours)
        items, failed = self._stats().items(
            "agent-activities",
            start - lookback,
            end,
            key=lambda a: (a.get("agentId"), a.get("type"), a.get("start"), a.get("category")),
            span=self._span,
        )
        rows: list[dict] = []
        rejected: list[dict] = []
        field = self.settings.activity_field
        for item in _presence(items):
            ref = f"agent-activities agentId {item.get('agentId')} start {item.get('start')}"
            begins = _ts(item.get("start"))
            problems = []
            if not item.get("agentId"):
                problems.append("agentId: missing (agents are identified by their agent id)")
            if begins is None:
                problems.append(f"start: {item.get('start')!r} is not a date and time")
            duration = item.get("duration")
            if duration is not None and not (isinstance(duration, int | float) and duration >= 0):
                problems.append(f"duration: {duration!r} is not milliseconds")
            if problems:
                rejected.append({"source_ref": ref, "row": item, "rules": problems})
                continue
            ends = None if duration is None else begins + pd.Timedelta(milliseconds=duration)
            rows.append(
                {
                    "user_identifier": str(item["agentId"]),
                    "external_activity": str(item.get(field) or item.get("category") or ""),
                    "start_utc": begins,
                    "end_utc": ends,
                    "source_ref": ref,
                }
            )
        frame = overlapping(status_rows(rows, self.integration_id), start, end)
        return Extract(
            frame=frame,
            rejected=rejected_rows(rejected),
            description=f"{VENDOR} agent activities, {len(items)} read",
            failed=failed,
        )


def _presence(items: list[dict]) -> Iterator[dict]:
    return (item for item in items if item.get("type") == "Presence")
