"""`vendor: ujet`: queue intervals and agent status from the UJET Manager API.

UJET is sold today as Google's Contact Center AI Platform (CCAI Platform); the Manager API is
the same. What we followed, and where it is documented:

- Base URL `https://{subdomain}.{domain}/manager/api/v1`, HTTP Basic auth with the company
  key as user and the company secret as password (CCAI Platform "Manager API" page,
  cloud.google.com/contact-center/ccai-platform/docs/manager-api; the singer-io/tap-ujet
  client uses the same). Rate limit: the CCAI page says 10 requests a second per customer;
  UJET integrations in the field (Assembled's UJET integration notes) are held to about 1
  request a second per endpoint, which is our default (`http.requests_per_second`).
- Lists page with `page` and `per` and hand out the next page in a `Link: <...>;
  rel="next"` header (RFC 8288); the next URL is used as given (tap-ujet reads the same
  header; its `per` default is 100).
- `GET /agent_activity_logs`: `id`, `agent_id`, `status` {id, name}, `started_at`,
  `ended_at`, `duration`, `activity` ("Agent activity endpoints" page). Each record is a
  span in one widget status; we take every record with a status as one segment.
  Filtered by `started_at[from]` / `started_at[to]` and sorted by `sort_column=started_at`
  (tap-ujet uses `started_at[from]` with the same sort; `[to]` is assumed symmetric).
- `GET /agents`: `id`, `email` (tap-ujet's agents schema). Agents are matched by email.
- `GET /calls` ("Call endpoints"): `id`, `call_type`, `status`, `created_at`, `queued_at`,
  `connected_at`, `ends_at`, `queue_duration` (`wait_duration` deprecated), `call_duration`,
  `hold_duration` (seconds), `selected_menu` {id, name} (the queue). `GET /chats` ("Chat
  endpoints"): the same, with `chat_duration`; its model shows `created_at` and
  `assigned_at` rather than `queued_at` / `connected_at`, so a chat without `queued_at`
  counts as queued when created and as connected when assigned. Both are filtered by
  `created_at[from]` / `created_at[to]` (tap-ujet's filter field).

Assumed where nothing says: a contact is offered in the interval its `queued_at` falls in
(contacts that never queued, such as outbound calls, are not queue workload); answered when
it has `connected_at`; abandoned when it ended (`ends_at`) without being connected; handle
time is `call_duration + hold_duration` (chats: `chat_duration`). Times are UTC with a `Z`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pandas as pd
from pydantic import Field, model_validator

from etl.resources.sources.base import Extract, SourceResource, SourceSettings
from etl.resources.sources.plumbing.frames import contact_rows, extract, overlapping, status_rows
from etl.resources.sources.plumbing.http import HttpClient, HttpResponse, HttpSettings
from etl.resources.sources.plumbing.paging import next_link, paginate
from etl.resources.sources.plumbing.timegrid import floor_to_grid, split_window

VENDOR = "UJET"
API_PATH = "/manager/api/v1"
CHANNELS = {"calls": "calls", "chats": "chats"}
DURATIONS = {"calls": ("call_duration", "hold_duration"), "chats": ("chat_duration",)}


class UjetSettings(SourceSettings):
    """`source:` settings of `vendor: ujet`."""

    company_key: str = Field(description="Company key (the API user name).")
    company_secret_env: str = Field(description="Environment variable holding the secret.")
    subdomain: str | None = Field(default=None, description="Your UJET subdomain.")
    domain: str = Field(default="ujet.co", description="The rest of the host name.")
    base_url: str | None = Field(default=None, description="Overrides subdomain and domain.")
    per_page: int = Field(default=100, ge=1, le=1000)
    queue_lookback_hours: int = Field(
        default=4, ge=0, le=48, description="Contacts are listed by creation: look back this far."
    )
    status_lookback_hours: int = Field(
        default=12, ge=0, le=24 * 7, description="Statuses are listed by start: look back."
    )
    max_days_per_request: int = Field(default=7, ge=1, le=31)
    service_level_s: int | None = Field(
        default=None, ge=0, description="Count answers within this wait as answered_in_sl."
    )
    http: HttpSettings = HttpSettings(requests_per_second=1.0)

    @model_validator(mode="after")
    def _url_known(self) -> UjetSettings:
        if not (self.subdomain or self.base_url):
            raise ValueError("set subdomain (as in <subdomain>.ujet.co) or base_url")
        return self

    @property
    def api_url(self) -> str:
        host = (self.base_url or f"https://{self.subdomain}.{self.domain}").rstrip("/")
        return host if host.endswith(API_PATH) else host + API_PATH


@dataclass
class _Api:
    http: HttpClient
    base: str
    basic: str
    per_page: int

    def get(self, url: str, params: dict | None = None) -> HttpResponse:
        return self.http.request(
            "GET", url, params=params, headers={"Authorization": f"Basic {self.basic}"}
        )

    def items(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        """Every record of a list endpoint, page by page along `Link: rel="next"`."""
        first = f"{self.base}/{path}"
        pages = paginate(
            lambda url: (
                self.get(url)
                if url
                else self.get(first, {**params, "per": self.per_page, "page": 1})
            ),
            lambda answer, _url: next_link(answer.header("Link"), answer.url),
            where=self.http.where("GET", first),
        )
        for answer in pages:
            body = answer.json()
            yield from body if isinstance(body, list) else (body or {}).get("data") or []


def _iso(moment: datetime) -> str:
    return pd.Timestamp(moment).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _times(values: list[Any]) -> pd.Series:
    return pd.to_datetime(
        pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601"
    )


def _seconds(value: Any) -> float:
    if value in (None, ""):
        return 0.0
    number = float(value)
    if not number >= 0:
        raise ValueError(f"{value!r} is not a duration in seconds")
    return number


class UjetSource(SourceResource):
    """`vendor: ujet`: UJET (CCAI Platform) Manager API (see the module docstring)."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model: ClassVar[type[SourceSettings]] = UjetSettings
    secret_envs: ClassVar[dict[str, str]] = {"company_secret": "company_secret_env"}

    settings: UjetSettings
    company_secret: str

    def _api(self) -> _Api:
        http = HttpClient(
            integration_id=self.integration_id,
            vendor=VENDOR,
            settings=self.settings.http,
            secrets=[self.company_secret],
            credential_hint=(
                f"the company key {self.settings.company_key!r} and the company secret in "
                f"environment variable {self.settings.company_secret_env}"
            ),
        )
        pair = f"{self.settings.company_key}:{self.company_secret}".encode()
        basic = base64.b64encode(pair).decode()
        return _Api(http, self.settings.api_url, basic, self.settings.per_page)

    def _listed(
        self, api: _Api, path: str, field: str, start: datetime, end: datetime
    ) -> list[dict]:
        """Records of `path` whose `field` lies in [start, end), each once (by id), in
        requests of at most `max_days_per_request`."""
        found: dict[Any, dict] = {}
        span = timedelta(days=self.settings.max_days_per_request)
        for piece_start, piece_end in split_window(start, end, span):
            params = {
                f"{field}[from]": _iso(piece_start),
                f"{field}[to]": _iso(piece_end),
                "sort_column": field,
                "sort_direction": "ASC",
            }
            for record in api.items(path, params):
                found.setdefault(record.get("id", id(record)), record)
        return list(found.values())

    # -- contacts -----------------------------------------------------------------------------
    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Calls and chats per queue, in the interval in which each entered the queue."""
        api = self._api()
        lookback = timedelta(hours=self.settings.queue_lookback_hours)
        records: list[dict] = []
        rejected: list[dict] = []
        read = 0
        for kind, channel in CHANNELS.items():
            contacts = self._listed(api, kind, "created_at", start - lookback, end)
            read += len(contacts)
            self._count(kind, channel, contacts, start, end, records, rejected)
        frame = contact_rows(records, self.integration_id, self.interval_minutes, "ujet")
        return extract(frame, rejected, f"{VENDOR} calls and chats, {read} contacts read")

    def _count(
        self,
        kind: str,
        channel: str,
        contacts: list[dict],
        start: datetime,
        end: datetime,
        records: list[dict],
        rejected: list[dict],
    ) -> None:
        connected_field = "connected_at" if kind == "calls" else "assigned_at"
        queued = _times(
            [
                c.get("queued_at") or (kind == "chats" and c.get("created_at")) or None
                for c in contacts
            ]
        )
        intervals = floor_to_grid(queued, self.interval_minutes, self.timezone)
        begin, stop = pd.Timestamp(start), pd.Timestamp(end)
        sl = self.settings.service_level_s
        for contact, moment, interval in zip(contacts, queued, intervals, strict=True):
            if pd.isna(moment):
                if contact.get("queued_at"):
                    rejected.append(
                        {
                            "source_ref": f"{kind} id {contact.get('id')}",
                            "row": contact,
                            "rules": [f"queued_at: {contact['queued_at']!r} is not a timestamp"],
                        }
                    )
                continue  # never queued: not queue workload
            if not begin <= interval < stop:
                continue
            ref = f"{kind} id {contact.get('id')}"
            menu = contact.get("selected_menu") or {}
            queue = menu.get("id")
            if queue in (None, ""):
                rejected.append(
                    {
                        "source_ref": ref,
                        "row": contact,
                        "rules": ["selected_menu: missing (the queue the contact waited in)"],
                        "partition_time": moment,
                    }
                )
                continue
            connected = bool(contact.get("connected_at") or contact.get(connected_field))
            try:
                handle = sum(_seconds(contact.get(f)) for f in DURATIONS[kind])
                hold = _seconds(contact.get("hold_duration"))
                wait = _seconds(contact.get("queue_duration", contact.get("wait_duration")))
            except (TypeError, ValueError) as exc:
                rejected.append(
                    {
                        "source_ref": ref,
                        "row": contact,
                        "rules": [str(exc)],
                        "partition_time": moment,
                    }
                )
                continue
            record = {
                "external_queue_id": str(queue),
                "channel": channel,
                "interval_start": interval,
                "offered": 1,
                "answered": int(connected),
                "abandoned": int(not connected and bool(contact.get("ends_at"))),
                "handle_time_s": handle if connected else 0.0,
                "talk_time_s": (handle - hold) if connected else 0.0,
                "hold_time_s": hold if connected else 0.0,
            }
            if sl is not None:
                record["answered_in_sl"] = int(connected and wait <= sl)
            records.append(record)

    # -- agent status -------------------------------------------------------------------------
    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Status segments overlapping [start, end), agents named by their email address."""
        api = self._api()
        lookback = timedelta(hours=self.settings.status_lookback_hours)
        logs = self._listed(api, "agent_activity_logs", "started_at", start - lookback, end)
        emails = {
            agent.get("id"): agent.get("email")
            for agent in api.items("agents", {})
            if agent.get("id") is not None
        }
        starts = _times([log.get("started_at") for log in logs])
        ends = _times([log.get("ended_at") for log in logs])
        rows: list[dict] = []
        rejected: list[dict] = []
        for log, begins, finishes in zip(logs, starts, ends, strict=True):
            status = (log.get("status") or {}).get("name")
            if not status:
                continue  # a notification without a widget status: no segment of its own
            ref = f"agent_activity_logs id {log.get('id')}"
            if not pd.isna(begins) and (
                begins >= pd.Timestamp(end)
                or (not pd.isna(finishes) and finishes <= pd.Timestamp(start))
            ):
                continue  # read for the look-back only: not in this window
            problems = []
            email = emails.get(log.get("agent_id"))
            if not isinstance(email, str) or email == "":
                problems.append(
                    f"agent_id {log.get('agent_id')}: no email (agent not returned by /agents)"
                )
            if pd.isna(begins):
                problems.append(f"started_at: {log.get('started_at')!r} is not a timestamp")
            elif log.get("ended_at") and (pd.isna(finishes) or finishes < begins):
                problems.append(f"ended_at: {log.get('ended_at')!r} is not a time after started_at")
            if problems:
                rejected.append(
                    {
                        "source_ref": ref,
                        "row": log,
                        "rules": problems,
                        "partition_time": None
                        if pd.isna(begins)
                        else max(begins, pd.Timestamp(start)),
                    }
                )
                continue
            rows.append(
                {
                    "user_identifier": email,
                    "external_activity": str(status),
                    "start_utc": begins,
                    "end_utc": finishes,
                    "source_ref": ref,
                }
            )
        frame = overlapping(status_rows(rows, self.integration_id), start, end)
        return extract(frame, rejected, f"{VENDOR} agent activity logs, {len(logs)} read")
