"""`vendor: five9`: contact intervals and agent states from Five9 reports, run through the
Five9 Configuration Web Services (SOAP) reporting methods.

Requests and fields, with where they are documented (Five9 Configuration Web Services API
reference, https://documentation.five9.com/bundle/api-config-web/ ; we read the method and
type pages through a public mirror, Cloverhound/five9-cli docs/scrape/):

- Endpoint and auth: SOAP 1.1 document/literal POSTs to
  `https://api.five9.com/wsadmin/v13/AdminWebService` (other data centres: api.five9.eu,
  api.five9.ca, ...), namespace `http://service.admin.ws.five9.com/`, HTTP Basic auth with a
  Five9 user that has the reporting permissions. Errors are SOAP faults (HTTP 500). The
  endpoint, namespace and Basic auth are as in public samples (the PyPI five9-wrapper docs;
  the PSFive9Admin PowerShell module), not from a reference page we could read.
- `runReport(folderName, reportName, criteria)`: `criteria` is a customReportCriteria whose
  `time` (reportTimeCriteria) has `start` and `end` dateTimes with a time zone offset
  ("2013-04-23T21:00:00.000-07:00"); returns the report run identifier. Five9 recommends
  small time periods per run.
  .../page/config-web-services/methods/reports/runReport.htm,
  .../page/config-web-services/data-types/customReportCriteria.htm,
  .../page/config-web-services/data-types/reportTimeCriteria.htm
- `isReportRunning(identifier, timeout)`: long poll, `timeout` seconds (Five9 asks for at
  least 5); returns true while the report is generated.
  .../page/config-web-services/methods/reports/isReportRunning.htm
- `getReportResultCsv(identifier)`: the result as CSV text with the report's English column
  names; "By default, the limit is 50,000 records". A result that reaches `row_limit` may be
  cut, so its window is split in two and each half run again, until every result fits.
  .../page/config-web-services/methods/reports/getReportResultCsv.htm

The reports themselves are custom reports a Five9 administrator creates (see the README):
their columns are not documented by the API, so every column name is a setting with a
default. Durations come as `HH:MM:SS` (hours may exceed 24 in sums); dates and times are in
the time zone of the Five9 user running the report (`report_timezone`).
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import re
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
from pydantic import Field

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.plumbing.frames import contact_rows, extract, overlapping, status_rows
from etl.resources.sources.plumbing.http import HttpClient, HttpError, HttpResponse, HttpSettings
from etl.resources.sources.plumbing.timegrid import Segment, resolve_segments, utc_candidates

VENDOR = "Five9"
NS = "http://service.admin.ws.five9.com/"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
DURATION = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)(\.\d+)?$")
TIME_COLUMN = {15: "QUARTER HOUR", 30: "HALF HOUR", 60: "HOUR"}


class Five9Report(dg.Config):
    folder: str = Field(description="Report folder (case sensitive), e.g. 'My Reports'.")
    name: str = Field(description="Report name (case sensitive).")


class Five9ContactColumns(dg.Config):
    """Column names of the contacts interval report (one row per skill and interval)."""

    skill: str = "SKILL"
    date: str = "DATE"
    time: str | None = Field(
        default=None,
        description="Interval column; default by interval: QUARTER HOUR, HALF HOUR or HOUR.",
    )
    media_type: str | None = Field(default=None, description="Channel column (default: calls).")
    offered: str = "CALLS"
    answered: str = "ANSWERED"
    abandoned: str = "ABANDONED"
    handle_time: str = "HANDLE TIME"
    talk_time: str | None = "TALK TIME"
    hold_time: str | None = "HOLD TIME"
    acw_time: str | None = "AFTER CALL WORK TIME"
    date_format: str = "%Y/%m/%d"
    time_format: str = "%H:%M"


class Five9StateColumns(dg.Config):
    """Column names of the agent state report (one row per agent state)."""

    agent: str = "AGENT"
    state: str = "STATE"
    reason_code: str | None = "REASON CODE"
    timestamp: str = "TIMESTAMP"
    duration: str = "AGENT STATE TIME"
    timestamp_format: str = "%a, %d %b %Y %H:%M:%S"


class Five9Settings(SourceSettings):
    """`source:` settings of `vendor: five9`."""

    username: str = Field(description="Five9 user the API runs reports as.")
    password_env: str = Field(description="Environment variable holding its password.")
    base_url: str = "https://api.five9.com/wsadmin/v13/AdminWebService"
    report_timezone: str | None = Field(
        default=None, description="Time zone of the report user (default: the integration's)."
    )
    contacts_report: Five9Report = Five9Report(folder="My Reports", name="wfm-etl contacts")
    agent_state_report: Five9Report = Five9Report(folder="My Reports", name="wfm-etl agent states")
    contact_columns: Five9ContactColumns = Five9ContactColumns()
    state_columns: Five9StateColumns = Five9StateColumns()
    media_channels: dict[str, str] = {
        "voice": "calls",
        "chat": "chats",
        "email": "emails",
        "social": "social",
        "text": "chats",
    }
    row_limit: int = Field(default=50_000, ge=2, description="getReportResultCsv row cap.")
    min_split_minutes: int = Field(default=15, ge=1, description="Smallest window to split to.")
    poll_wait_s: int = Field(default=5, ge=0, description="isReportRunning long-poll timeout.")
    poll_timeout_s: float = Field(default=900.0, gt=0)
    state_lookback_hours: int = Field(
        default=12, ge=0, description="States are selected by start: look back this far."
    )
    http: HttpSettings = HttpSettings()


def parse_duration(text: str) -> float:
    """Seconds of a Five9 `HH:MM:SS` duration ("" and "-" mean none: 0)."""
    value = text.strip()
    if value in ("", "-"):
        return 0.0
    match = DURATION.match(value)
    if not match:
        raise ValueError(f"{text!r} is not HH:MM:SS")
    hours, minutes, seconds, fraction = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(fraction or 0)


def parse_count(text: str) -> int:
    value = text.strip().replace(",", "")
    if value in ("", "-"):
        return 0
    if not value.isdigit():
        raise ValueError(f"{text!r} is not a count")
    return int(value)


def _local_iso(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S.000%z")
    return f"{text[:-2]}:{text[-2:]}"  # +0100 -> +01:00, as the API documents


@dataclass
class _Soap:
    http: HttpClient
    url: str
    username: str
    password: str = dataclasses.field(repr=False)

    def call(self, operation: str, inner: str) -> str:
        """Call one operation; the text of its `return`."""
        envelope = (
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:ser="{NS}">'
            f"<soapenv:Header/><soapenv:Body><ser:{operation}>{inner}</ser:{operation}>"
            "</soapenv:Body></soapenv:Envelope>"
        )
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        try:
            response = self.http.request(
                "POST",
                self.url,
                headers={
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "text/xml; charset=utf-8",
                    "Accept": "text/xml",
                    "SOAPAction": '""',
                },
                data=envelope.encode(),
                accept=(500,),
                retryable=lambda r: _fault(r) is None,
            )
        except HttpError as exc:
            raise type(exc)(f"{exc} (operation {operation})", status=exc.status) from None
        fault = _fault(response)
        if fault is not None:
            raise SourceError(
                f"{self.http.where('POST', self.url)} {operation}: SOAP fault: "
                f"{self.http.quote(fault)}"
            )
        if response.status >= 400:  # a 500 without a fault was retried; give up clearly
            raise HttpError(
                f"{self.http.where('POST', self.url)} {operation}: HTTP {response.status}",
                status=response.status,
            )
        root = _xml(response)
        found = next((e for e in root.iter() if _local_name(e.tag) == "return"), None)
        if found is None:  # not an answer to the operation: never read it as "no rows"
            raise SourceError(
                f"{self.http.where('POST', self.url)} {operation}: the answer has no return value"
            )
        return found.text or ""


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(response: HttpResponse) -> ET.Element:
    try:
        return ET.fromstring(response.body)
    except ET.ParseError as exc:
        raise SourceError(f"{VENDOR}: the answer is not XML ({exc})") from None


def _fault(response: HttpResponse) -> str | None:
    """The fault string of a SOAP fault answer, else None."""
    if b"Fault" not in response.body:
        return None
    try:
        root = ET.fromstring(response.body)
    except ET.ParseError:
        return None
    for element in root.iter():
        if _local_name(element.tag) == "Fault":
            text = next((e.text for e in element.iter() if _local_name(e.tag) == "faultstring"), "")
            return (text or "").strip() or "(no faultstring)"
    return None


class Five9Source(SourceResource):
    """`vendor: five9`: Five9 reports over the Configuration Web Services."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model: ClassVar[type[SourceSettings]] = Five9Settings

    secret_envs: ClassVar[dict[str, str]] = {"password": "password_env"}
    settings: Five9Settings
    password: str

    @property
    def report_zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.report_timezone or self.timezone)

    def _soap(self) -> _Soap:
        http = HttpClient(
            integration_id=self.integration_id,
            vendor=VENDOR,
            settings=self.settings.http,
            secrets=[self.password],
            credential_hint=(
                f"the user {self.settings.username!r}, its reporting permissions and the "
                f"password in environment variable {self.settings.password_env}"
            ),
        )
        return _Soap(http, self.settings.base_url, self.settings.username, self.password)

    # -- running reports ----------------------------------------------------------------------
    def _run_once(self, soap: _Soap, report: Five9Report, start: datetime, end: datetime) -> str:
        zone = self.report_zone
        criteria = (
            f"<criteria><time><end>{_local_iso(end, zone)}</end>"
            f"<start>{_local_iso(start, zone)}</start></time></criteria>"
        )
        identifier = soap.call(
            "runReport",
            f"<folderName>{escape(report.folder)}</folderName>"
            f"<reportName>{escape(report.name)}</reportName>{criteria}",
        ).strip()
        if not identifier:
            raise SourceError(f"{soap.http.where('POST', soap.url)} runReport: no identifier")
        deadline = time.monotonic() + self.settings.poll_timeout_s
        while True:
            asked = time.monotonic()
            running = soap.call(
                "isReportRunning",
                f"<identifier>{escape(identifier)}</identifier>"
                f"<timeout>{self.settings.poll_wait_s}</timeout>",
            )
            if running.strip().lower() != "true":
                break
            if time.monotonic() >= deadline:
                raise SourceError(
                    f"integration {self.integration_id!r}: {VENDOR} report {report.name!r} still "
                    f"running after {self.settings.poll_timeout_s:.0f} s (source.poll_timeout_s)"
                )
            # A long poll that came back early must not become a busy loop.
            time.sleep(max(0.0, self.settings.poll_wait_s - (time.monotonic() - asked)))
        text = soap.call("getReportResultCsv", f"<identifier>{escape(identifier)}</identifier>")
        if not text.strip():  # a report has its header line even without rows
            raise SourceError(
                f"integration {self.integration_id!r}: {VENDOR} report {report.name!r}: an empty "
                "result, not even the header line (the report was not delivered)"
            )
        return text

    def _rows(
        self, soap: _Soap, report: Five9Report, start: datetime, end: datetime
    ) -> tuple[list[dict], int]:
        """Rows of `report` for [start, end), splitting the window while a result is capped.
        Returns the rows (each with `_ref` and the `_window` of its run) and the number of
        report runs."""
        text = self._run_once(soap, report, start, end)
        reader = csv.DictReader(io.StringIO(text))
        rows = list(reader)
        if len(rows) < self.settings.row_limit:
            window = f"{start:%Y-%m-%dT%H:%M}Z..{end:%Y-%m-%dT%H:%M}Z"
            for number, row in enumerate(rows, start=2):  # line 1 is the header
                row["_ref"] = f"{report.name} {window} line {number}"
                row["_window"] = (start, end)
            return rows, 1
        smallest = timedelta(minutes=self.settings.min_split_minutes)
        if end - start <= smallest:
            raise SourceError(
                f"integration {self.integration_id!r}: {VENDOR} report {report.name!r} returned "
                f"{len(rows)} rows (the limit) for {start:%Y-%m-%d %H:%M}..{end:%H:%M} UTC, "
                f"already the smallest window ({self.settings.min_split_minutes} min): the "
                "result would be cut; narrow the report or raise the Five9 limit"
            )
        half = (end - start) / 2
        middle = start + max(smallest, half - half % smallest)
        first, runs_a = self._rows(soap, report, start, middle)
        second, runs_b = self._rows(soap, report, middle, end)
        return first + second, 1 + runs_a + runs_b

    # -- contacts -----------------------------------------------------------------------------
    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Interval rows per skill (and media type) whose interval starts in [start, end)."""
        soap = self._soap()
        rows, runs = self._rows(soap, self.settings.contacts_report, start, end)
        columns = self.settings.contact_columns
        time_column = columns.time or TIME_COLUMN[self.interval_minutes]
        channels = {k.lower(): v for k, v in self.settings.media_channels.items()}
        wanted = [
            c
            for c in (
                columns.skill,
                columns.date,
                time_column,
                columns.media_type,
                columns.offered,
                columns.answered,
                columns.abandoned,
                columns.handle_time,
                columns.talk_time,
                columns.hold_time,
                columns.acw_time,
            )
            if c
        ]
        self._check_columns(self.settings.contacts_report, rows, wanted, "contact_columns")
        rejected: list[dict] = []
        parsed: list[dict] = []
        seen: set[tuple] = set()
        for row in rows:
            ref, window = row.pop("_ref"), row.pop("_window")
            identity = tuple(sorted(row.items()))
            if identity in seen:
                continue  # the same row from two adjoining windows
            seen.add(identity)
            problems = []
            record: dict[str, Any] = {"_ref": ref, "_row": row, "_window": window}
            try:
                local = datetime.strptime(
                    f"{row.get(columns.date, '')} {row.get(time_column, '')}".strip(),
                    f"{columns.date_format} {columns.time_format}",
                )
            except ValueError:
                problems.append(
                    f"{columns.date}/{time_column}: {row.get(columns.date)!r} "
                    f"{row.get(time_column)!r} is not a date and interval"
                )
                local = None
            skill = row.get(columns.skill, "")
            if not skill:
                problems.append(f"{columns.skill}: missing")
            channel = "calls"
            if columns.media_type:
                media = row.get(columns.media_type, "")
                channel = channels.get(media.strip().lower(), "")
                if not channel:
                    problems.append(
                        f"{columns.media_type}: {media!r} has no channel (source.media_channels)"
                    )
            for column, field, parse in (
                (columns.offered, "offered", parse_count),
                (columns.answered, "answered", parse_count),
                (columns.abandoned, "abandoned", parse_count),
                (columns.handle_time, "handle_time_s", parse_duration),
                (columns.talk_time, "talk_time_s", parse_duration),
                (columns.hold_time, "hold_time_s", parse_duration),
                (columns.acw_time, "acw_time_s", parse_duration),
            ):
                if column is None:
                    continue
                try:
                    record[field] = parse(row[column])
                except ValueError as exc:
                    problems.append(f"{column}: {exc}")
            record.update(external_queue_id=skill, channel=channel, local=local)
            if problems:
                rejected.append({"source_ref": ref, "row": row, "rules": problems})
                continue
            parsed.append(record)
        self._place_intervals(parsed, rejected, f"{columns.date}/{time_column}")
        begin, stop = pd.Timestamp(start), pd.Timestamp(end)
        records = [
            r for r in parsed if "interval_start" in r and begin <= r["interval_start"] < stop
        ]
        frame = contact_rows(records, self.integration_id, self.interval_minutes, "five9 report")
        description = f"{VENDOR} report {self.settings.contacts_report.name!r}, {runs} run(s)"
        return extract(frame, rejected, description)

    def _check_columns(
        self, report: Five9Report, rows: list[dict], wanted: list[str], setting: str
    ) -> None:
        """A column the report lacks is a whole-source error, not a bad row."""
        missing = [c for c in wanted if rows and c not in rows[0]]
        if missing:
            found = ", ".join(k for k in rows[0] if not k.startswith("_"))
            raise SourceError(
                f"integration {self.integration_id!r}: {VENDOR} report {report.folder!r}/"
                f"{report.name!r} has no column(s) {', '.join(map(repr, missing))} (it has "
                f"{found}); add them to the report or set source.{setting}"
            )

    def _place_intervals(self, records: list[dict], rejected: list[dict], column: str) -> None:
        """UTC interval start of each row from its local date and time.

        Of the two meanings of a label in the hour that repeats when clocks go back, the one
        inside the row's report window counts; when a window holds both, the skill's two rows
        with that label come in time order (the first is the earlier).
        """
        zone = self.report_zone
        pending: dict[tuple, list[tuple[dict, list]]] = defaultdict(list)
        for record in records:
            moments = utc_candidates(record["local"], zone)
            inside = [m for m in moments if record["_window"][0] <= m < record["_window"][1]]
            moments = inside or moments
            if len(moments) == 1:
                record["interval_start"] = pd.Timestamp(moments[0])
            elif not moments:
                rejected.append(
                    {
                        "source_ref": record["_ref"],
                        "row": record["_row"],
                        "rules": [f"{column}: local time {record['local']} does not exist"],
                    }
                )
            else:
                key = (record["external_queue_id"], record["channel"], record["local"])
                pending[key].append((record, moments))
        for (_, _, local), group in pending.items():
            if len(group) == 2:
                for position, (record, moments) in enumerate(group):
                    record["interval_start"] = pd.Timestamp(moments[position])
                continue
            for record, _ in group:
                rejected.append(
                    {
                        "source_ref": record["_ref"],
                        "row": record["_row"],
                        "rules": [
                            f"{column}: local time {local} is ambiguous (clocks went back) and "
                            f"{len(group)} rows carry it"
                        ],
                    }
                )

    # -- agent status -------------------------------------------------------------------------
    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Agent state segments overlapping [start, end) (start + duration, in UTC)."""
        soap = self._soap()
        lookback = timedelta(hours=self.settings.state_lookback_hours)
        rows, runs = self._rows(soap, self.settings.agent_state_report, start - lookback, end)
        columns = self.settings.state_columns
        wanted = [columns.agent, columns.state, columns.timestamp, columns.duration]
        wanted += [columns.reason_code] if columns.reason_code else []
        self._check_columns(self.settings.agent_state_report, rows, wanted, "state_columns")
        segments: list[Segment] = []
        readable: list[tuple[dict, str]] = []
        rejected: list[dict] = []
        seen: set[tuple] = set()
        # Parsed in one go (tens of thousands of rows); the odd ones again, row by row.
        stamps = pd.to_datetime(
            pd.Series([row.get(columns.timestamp, "") for row in rows], dtype=object),
            format=columns.timestamp_format,
            errors="coerce",
        )
        for row, stamp in zip(rows, stamps, strict=True):
            ref, window = row.pop("_ref"), row.pop("_window")
            identity = tuple(sorted(row.items()))
            if identity in seen:
                continue
            seen.add(identity)
            problems = []
            agent = row.get(columns.agent)
            if not agent:
                problems.append(f"{columns.agent}: missing (agents are identified by user name)")
            try:
                begins = (
                    stamp.to_pydatetime()
                    if not pd.isna(stamp)
                    else _five9_time(row.get(columns.timestamp, ""), columns.timestamp_format)
                )
            except ValueError as exc:
                problems.append(f"{columns.timestamp}: {exc}")
            try:
                duration = parse_duration(row.get(columns.duration, ""))
            except ValueError as exc:
                problems.append(f"{columns.duration}: {exc}")
            if problems:
                rejected.append({"source_ref": ref, "row": row, "rules": problems})
                continue
            segments.append(Segment(agent, begins, None, duration, within=window))
            readable.append((row, ref))
        out = []
        for (row, ref), placed in zip(
            readable, resolve_segments(segments, self.report_zone.key), strict=True
        ):
            if placed.problem:
                rejected.append(
                    {
                        "source_ref": ref,
                        "row": row,
                        "rules": [f"{columns.timestamp}: {placed.problem}"],
                    }
                )
                continue
            state = row.get(columns.state, "")
            reason = row.get(columns.reason_code, "") if columns.reason_code else ""
            out.append(
                {
                    "user_identifier": row[columns.agent],
                    "external_activity": f"{state} / {reason}" if reason else state,
                    "start_utc": placed.start_utc,
                    "end_utc": placed.end_utc,
                    "source_ref": ref,
                }
            )
        frame = overlapping(status_rows(out, self.integration_id), start, end)
        description = f"{VENDOR} report {self.settings.agent_state_report.name!r}, {runs} run(s)"
        return extract(frame, rejected, description)


def _five9_time(text: str, fmt: str) -> datetime:
    value = text.strip()
    try:
        return datetime.strptime(value, fmt)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} does not match {fmt!r}") from None
