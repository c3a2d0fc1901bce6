"""`vendor: talkdesk`: contact intervals and agent status from the Talkdesk Explore API.

Requests and fields, with where they are documented (docs.talkdesk.com pages as stored
when this was written; where a page was missing, the public Airbyte connector
airbytehq/airbyte airbyte-integrations/connectors/source-talkdesk-explore is named):

- Token: OAuth client-credentials grant, `POST https://<account>.talkdeskid.com/oauth/token`
  with HTTP Basic `client_id:client_secret`; scopes `data-reports:read data-reports:write`.
  The token URL form comes from the Airbyte connector's spec (its auth_url example), which
  points to https://docs.talkdesk.com/docs/authentication (not available to us); the read
  scope from https://docs.talkdesk.com/reference/download-a-report
- Create a report job: `POST /data/reports/<type>/jobs` with `name`, `timezone` (IANA: the
  zone the `timespan` is read in, and the zone of local times in the report), `format`
  (json) and `timespan` {from, to} ("YYYY-MM-DD HH:MM:SS"); answer 202 with `job` {id,
  status} and `_links`. Records are selected by their END time (docs: "Reports are aggregated
  by a record's end date/time"), so a window is requested `lookahead_hours` longer and the
  rows are filtered here by their start. https://docs.talkdesk.com/docs/executing-a-report
  (the Reporting API page; the Explore API keeps the job flow under /data/reports), the
  `job`-wrapped answer and `timezone` from the Explore reference pages below and the Airbyte
  connector (streams.py).
- Poll: `GET /data/reports/<type>/jobs/<id>`: 200 with `job.status` (created, processing,
  uploading, done, failed, canceled, deleted) while it runs; 303 (some pages say 300) with
  `Location` of the file once done. https://docs.talkdesk.com/reference/check-a-report-status
- Download: `GET /data/reports/<type>/files/<id>`: `{"entries": [...], "total": n}`.
  https://docs.talkdesk.com/reference/download-a-report
  Paging of the file is not documented; when an answer carries a HAL `_links.next.href`
  (the style of Talkdesk's paged endpoints, e.g. "Inspecting previous report jobs") it is
  followed. A `Location` on another host (a file store) is fetched without our token.
- `calls` report (https://docs.talkdesk.com/docs/calls-report): `call_id`, `type` (inbound,
  missed, abandoned, short_abandoned, voicemail, outbound, outbound_missed), `start_at` (UTC,
  "...Z"), `talk_time`, `hold_time` (seconds), `ring_groups`. Contacts are counted per ring
  group (the first one listed) and interval of `start_at`, on the integration's local grid.
- `user_status` report (https://docs.talkdesk.com/docs/user-status-explore): `user_email`,
  `status_label`, `status_start_at`, `status_end_at` (local time of the requested timezone,
  "YYYY-MM-DD HH:MM:SS", no offset), `status_time` (seconds). "Up to a month of data per
  request": jobs are cut to `max_days_per_job`. Agents are identified by `user_email`,
  exactly as delivered. Local times become UTC with the zone's rules; in the hour that
  happens twice when clocks go back, the segment's duration and its neighbours decide.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import Field, model_validator

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.plumbing.frames import contact_rows, extract, overlapping, status_rows
from etl.resources.sources.plumbing.http import HttpClient, HttpResponse, HttpSettings
from etl.resources.sources.plumbing.oauth import ClientCredentials, client_credentials_session
from etl.resources.sources.plumbing.paging import paginate
from etl.resources.sources.plumbing.timegrid import (
    Segment,
    floor_to_grid,
    resolve_segments,
    split_window,
)

VENDOR = "Talkdesk"
RUNNING = {"created", "processing", "uploading", "sending"}
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"


class TalkdeskSettings(SourceSettings):
    """`source:` settings of `vendor: talkdesk`."""

    client_id: str = Field(description="OAuth client id (client credentials).")
    client_secret_env: str = Field(description="Environment variable holding the secret.")
    account: str | None = Field(
        default=None, description="Talkdesk account name: the token URL is <account>.talkdeskid.com"
    )
    oauth_url: str | None = Field(
        default=None, description="Overrides the token URL (not named token_*: see config)."
    )
    base_url: str = Field(
        default="https://api.talkdeskapp.com", description="API URL of the account's region."
    )
    scope: str = "data-reports:read data-reports:write"
    report_timezone: str | None = Field(
        default=None, description="Timezone reports are requested in (default: the integration's)."
    )
    max_days_per_job: int = Field(default=28, ge=1, le=31)
    lookahead_hours: int = Field(
        default=24, ge=0, le=24 * 7, description="Records are selected by end time: look ahead."
    )
    poll_interval_s: float = Field(default=5.0, ge=0)
    poll_timeout_s: float = Field(default=900.0, gt=0)
    offered_types: list[str] = ["inbound", "missed", "abandoned", "short_abandoned", "voicemail"]
    answered_types: list[str] = ["inbound"]
    abandoned_types: list[str] = ["abandoned", "short_abandoned"]
    handle_time_fields: list[str] = ["talk_time", "hold_time"]
    no_ring_group_queue: str = "(no ring group)"
    http: HttpSettings = HttpSettings()

    @model_validator(mode="after")
    def _token_url_known(self) -> TalkdeskSettings:
        if not (self.account or self.oauth_url):
            raise ValueError("set account (the Talkdesk account name) or oauth_url")
        return self

    def resolved_token_url(self) -> str:
        return self.oauth_url or f"https://{self.account}.talkdeskid.com/oauth/token"


@dataclass
class _Reports:
    """Runs Explore report jobs: create, poll, download."""

    http: HttpClient
    auth: ClientCredentials
    base: str
    settings: TalkdeskSettings
    integration_id: str
    sleep: Callable[[float], None] = time.sleep

    def run(self, kind: str, start: datetime, end: datetime, zone: str) -> list[dict]:
        """Entries of one job for [start, end), timespan read in `zone`."""
        local = ZoneInfo(zone)
        body = {
            "name": f"wfm-etl {self.integration_id} {kind}",
            "timezone": zone,
            "format": "json",
            "timespan": {
                "from": start.astimezone(local).strftime(LOCAL_FORMAT),
                "to": (end - timedelta(seconds=1)).astimezone(local).strftime(LOCAL_FORMAT),
            },
        }
        created = self.auth.request("POST", f"{self.base}/data/reports/{kind}/jobs", json_body=body)
        job = (created.json() or {}).get("job") or created.json() or {}
        job_id = job.get("id")
        if not job_id:
            raise SourceError(f"{self._where(kind)}: the job answer has no id")
        location = self._wait(kind, job_id)
        return self._download(kind, location)

    def _where(self, kind: str) -> str:
        return f"integration {self.integration_id!r}: {VENDOR} {kind} report"

    def _wait(self, kind: str, job_id: str) -> str:
        url = f"{self.base}/data/reports/{kind}/jobs/{job_id}"
        deadline = time.monotonic() + self.settings.poll_timeout_s
        while True:
            answer = self.auth.request("GET", url)
            if answer.status in (300, 301, 302, 303, 307) and answer.header("Location"):
                return urllib.parse.urljoin(url, answer.header("Location"))
            job = (answer.json() or {}).get("job") or answer.json() or {}
            status = str(job.get("status", "")).lower()
            if status == "done":
                href = ((answer.json() or {}).get("_links") or {}).get("files", {}).get("href")
                return urllib.parse.urljoin(url, href or f"../files/{job_id}")
            if status not in RUNNING:
                raise SourceError(f"{self._where(kind)} job {job_id}: status {status or '?'}")
            if time.monotonic() >= deadline:
                raise SourceError(
                    f"{self._where(kind)} job {job_id}: still {status} after "
                    f"{self.settings.poll_timeout_s:.0f} s (source.poll_timeout_s)"
                )
            self.sleep(self.settings.poll_interval_s)

    def _get(self, url: str) -> HttpResponse:
        same_host = urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(self.base).netloc
        if same_host:
            return self.auth.request("GET", url)
        return self.http.request("GET", url)  # a file store: our token is not for it

    def _download(self, kind: str, url: str) -> list[dict]:
        """Every entry of a report file, following the pages' `_links.next`. A page without
        `entries`, or fewer entries than the file's `total`, is an incomplete delivery, never
        "no calls"."""

        def fetch(cursor: str | None) -> tuple[str, dict]:
            where = cursor or url
            page = self._get(where).json() or {}
            if not isinstance(page, dict) or "entries" not in page:
                keys = ", ".join(sorted(page)) if isinstance(page, dict) else type(page).__name__
                raise SourceError(
                    f"{self._where(kind)} file: a page without entries (it has: {keys or '-'})"
                )
            return where, page

        def following(page: tuple[str, dict], _cursor: str | None) -> str | None:
            where, body = page
            href = ((body.get("_links") or {}).get("next") or {}).get("href")
            return urllib.parse.urljoin(where, href) if href else None

        pages = list(paginate(fetch, following, where=self.http.where("GET", url)))
        entries = [entry for _, body in pages for entry in body["entries"] or []]
        totals = [body["total"] for _, body in pages if isinstance(body.get("total"), int)]
        if totals and len(entries) < totals[-1]:
            raise SourceError(
                f"{self._where(kind)} file: {len(entries)} of its {totals[-1]} entries delivered"
            )
        return entries


def _seconds(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    number = float(value)
    if number < 0 or number != number:
        raise ValueError(f"{value!r} is not a duration in seconds")
    return number


class TalkdeskSource(SourceResource):
    """`vendor: talkdesk`: Talkdesk Explore reports (see the module docstring)."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model: ClassVar[type[SourceSettings]] = TalkdeskSettings
    secret_envs: ClassVar[dict[str, str]] = {"client_secret": "client_secret_env"}

    settings: TalkdeskSettings
    client_secret: str

    @property
    def report_zone(self) -> str:
        return self.settings.report_timezone or self.timezone

    def _reports(self) -> _Reports:
        http, auth = client_credentials_session(
            self, VENDOR, self.settings.resolved_token_url(), scope=self.settings.scope
        )
        return _Reports(
            http, auth, self.settings.base_url.rstrip("/"), self.settings, self.integration_id
        )

    def _entries(self, kind: str, start: datetime, end: datetime, key: Callable) -> list[dict]:
        """Entries of every job needed for [start, end), each record once."""
        reports = self._reports()
        found: dict[Any, dict] = {}
        span = timedelta(days=self.settings.max_days_per_job)
        for piece_start, piece_end in split_window(start, end, span):
            # An hour either side: a local timespan edge in a DST change is never ambiguous.
            for entry in reports.run(
                kind,
                piece_start - timedelta(hours=1),
                piece_end + timedelta(hours=1),
                self.report_zone,
            ):
                found.setdefault(key(entry), entry)
        return list(found.values())

    # -- contacts -----------------------------------------------------------------------------
    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Calls per ring group and interval of their start, for intervals in [start, end)."""
        lookahead = timedelta(hours=self.settings.lookahead_hours)
        entries = self._entries(
            "calls", start, end + lookahead, key=lambda e: e.get("call_id") or id(e)
        )
        settings = self.settings
        offered = set(settings.offered_types)
        records: list[dict] = []
        rejected: list[dict] = []
        starts = pd.to_datetime(
            pd.Series([e.get("start_at") for e in entries], dtype=object),
            utc=True,
            errors="coerce",
            format="ISO8601",
        )
        intervals = floor_to_grid(starts, self.interval_minutes, self.timezone)
        begin, stop = pd.Timestamp(start), pd.Timestamp(end)
        for entry, moment, interval in zip(entries, starts, intervals, strict=True):
            if entry.get("type") not in offered:
                continue  # outbound and other non-queue calls are not contacts offered
            ref = f"calls report call_id {entry.get('call_id')}"
            if pd.isna(moment):
                rejected.append(
                    {
                        "source_ref": ref,
                        "row": entry,
                        "rules": [f"start_at: {entry.get('start_at')!r} is not a UTC timestamp"],
                    }
                )
                continue
            if not (begin <= interval < stop):
                continue  # belongs to another window
            answered = entry.get("type") in settings.answered_types
            try:
                handle = sum(_seconds(entry.get(f)) for f in settings.handle_time_fields)
                talk, hold = _seconds(entry.get("talk_time")), _seconds(entry.get("hold_time"))
            except (TypeError, ValueError) as exc:
                rejected.append(
                    {"source_ref": ref, "row": entry, "rules": [str(exc)], "partition_time": moment}
                )
                continue
            groups = str(entry.get("ring_groups") or "").split(",")
            queue = groups[0].strip() or settings.no_ring_group_queue
            records.append(
                {
                    "external_queue_id": queue,
                    "channel": "calls",
                    "interval_start": interval,
                    "offered": 1,
                    "answered": int(answered),
                    "abandoned": int(entry.get("type") in settings.abandoned_types),
                    "handle_time_s": handle if answered else 0.0,
                    "talk_time_s": talk if answered else 0.0,
                    "hold_time_s": hold if answered else 0.0,
                }
            )
        frame = contact_rows(records, self.integration_id, self.interval_minutes, "calls report")
        return extract(frame, rejected, f"{VENDOR} calls report, {len(entries)} calls read")

    # -- agent status -------------------------------------------------------------------------
    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Status segments overlapping [start, end), times normalised to UTC."""
        lookahead = timedelta(hours=self.settings.lookahead_hours)
        entries = self._entries(
            "user_status",
            start,
            end + lookahead,
            key=lambda e: (e.get("user_id"), e.get("status_start_at"), e.get("status_label")),
        )
        segments: list[Segment] = []
        readable: list[dict] = []
        rejected: list[dict] = []
        for entry in entries:
            ref = (
                f"user_status report user_id {entry.get('user_id')} "
                f"status_start_at {entry.get('status_start_at')}"
            )
            problems = []
            if not isinstance(entry.get("user_email"), str) or entry["user_email"] == "":
                problems.append("user_email: missing (agents are identified by their email)")
            try:
                begins = _local(entry.get("status_start_at"))
                ends = _local(entry.get("status_end_at")) if entry.get("status_end_at") else None
                duration = entry.get("status_time")
                duration = float(duration) if duration not in (None, "") else None
            except (TypeError, ValueError) as exc:
                problems.append(f"status times: {exc}")
            if problems:
                rejected.append({"source_ref": ref, "row": entry, "rules": problems})
                continue
            group = str(entry.get("user_id") or entry["user_email"])
            segments.append(Segment(group, begins, ends, duration))
            readable.append({"entry": entry, "ref": ref})
        rows = []
        for item, placed in zip(
            readable, resolve_segments(segments, self.report_zone), strict=True
        ):
            entry = item["entry"]
            if placed.problem:
                rejected.append(
                    {
                        "source_ref": item["ref"],
                        "row": entry,
                        "rules": [f"status times: {placed.problem}"],
                    }
                )
                continue
            rows.append(
                {
                    "user_identifier": entry["user_email"],
                    "external_activity": str(entry.get("status_label") or ""),
                    "start_utc": placed.start_utc,
                    "end_utc": placed.end_utc,
                    "source_ref": item["ref"],
                }
            )
        frame = overlapping(status_rows(rows, self.integration_id), start, end)
        return extract(
            frame,
            rejected,
            f"{VENDOR} user_status report ({self.report_zone}), {len(entries)} rows",
        )


def _local(value: Any) -> datetime:
    """A report time: naive local "YYYY-MM-DD HH:MM:SS" (or ISO with an offset)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a date and time")
    text = value.strip()
    try:
        return datetime.strptime(text, LOCAL_FORMAT)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
