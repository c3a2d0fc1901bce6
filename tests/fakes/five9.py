"""A fake Five9 Configuration Web Service (SOAP): runReport, isReportRunning and
getReportResultCsv with HTTP Basic auth, SOAP faults and the documented 50,000-row cap on a
CSV result (see etl/resources/sources/vendors/five9.py).

Reports are plain functions of the UTC window a run asks for, so tests know the rows they
should get; times in the rows are local times of the report user's time zone.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from tests.fakes import FakeServer, Recorded, Reply

PATH = "/wsadmin/v13/AdminWebService"
NS = "http://service.admin.ws.five9.com/"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
USERNAME = "wfm.api@acme.example"
Report = Callable[[datetime, datetime], tuple[list[str], list[dict]]]


def envelope(inner: str) -> str:
    return (
        f'<?xml version="1.0" ?><env:Envelope xmlns:env="{SOAP}"><env:Header/><env:Body>'
        f"{inner}</env:Body></env:Envelope>"
    )


def fault(text: str) -> Reply:
    body = envelope(
        f"<env:Fault><faultcode>env:Server</faultcode><faultstring>{escape(text)}</faultstring>"
        "</env:Fault>"
    )
    return Reply(500, body, {"Content-Type": "text/xml;charset=UTF-8"})


def answer(operation: str, value: str) -> Reply:
    body = envelope(
        f'<ns2:{operation}Response xmlns:ns2="{NS}"><return>{escape(value)}</return>'
        f"</ns2:{operation}Response>"
    )
    return Reply(200, body, {"Content-Type": "text/xml;charset=UTF-8"})


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class FakeFive9(FakeServer):
    def __init__(self, password: str, row_cap: int = 50_000, running_polls: int = 1) -> None:
        super().__init__()
        self.password = password
        self.row_cap = row_cap
        self.running_polls = running_polls
        self.reports: dict[tuple[str, str], Report] = {}
        self.runs: dict[str, dict] = {}
        self.ids = itertools.count(1)
        self.route("POST", PATH, self._soap)

    def operations(self, name: str) -> list[ET.Element]:
        """The parsed operation elements of every call of `name`."""
        found = []
        for request in self.calls("POST", PATH):
            element = _operation(request.body)
            if element is not None and element.tag == f"{{{NS}}}{name}":
                found.append(element)
        return found

    def _soap(self, request: Recorded) -> Reply:
        basic = base64.b64encode(f"{USERNAME}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {basic}":
            return Reply(
                401, "<html><body>401 Unauthorized</body></html>", {"Content-Type": "text/html"}
            )
        operation = _operation(request.body)
        if operation is None or not operation.tag.startswith(f"{{{NS}}}"):
            return fault("Unmarshalling Error: unexpected element")
        name = operation.tag.split("}")[1]
        values = {child.tag.split("}")[-1]: child for child in operation}
        if name == "runReport":
            return self._run(values)
        identifier = values.get("identifier")
        run = self.runs.get(identifier.text if identifier is not None else "")
        if run is None:
            return fault("Report result with specified identifier is not found")
        if name == "isReportRunning":
            if values.get("timeout") is None or not (values["timeout"].text or "").isdigit():
                return fault("timeout: must be a number of seconds")
            run["polls"] += 1
            return answer(name, "true" if run["polls"] <= self.running_polls else "false")
        if name == "getReportResultCsv":
            if run["polls"] <= self.running_polls:
                return fault("Result is not ready due to process is not complete")
            return answer(name, run["csv"])
        return fault(f"unknown operation {name}")

    def _run(self, values: dict) -> Reply:
        folder = (values.get("folderName").text or "") if "folderName" in values else ""
        name = (values.get("reportName").text or "") if "reportName" in values else ""
        report = self.reports.get((folder, name))
        if report is None:
            return fault(f'Report "{name}" not found in folder "{folder}"')
        time_element = values.get("criteria").find("time") if "criteria" in values else None
        try:
            start = datetime.fromisoformat(time_element.findtext("start")).astimezone(UTC)
            end = datetime.fromisoformat(time_element.findtext("end")).astimezone(UTC)
        except (AttributeError, TypeError, ValueError):
            return fault("criteria.time: start and end are required dateTimes")
        columns, rows = report(start, end)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows[: self.row_cap])
        identifier = f"run-{next(self.ids):04d}"
        self.runs[identifier] = {"csv": out.getvalue(), "polls": 0, "window": (start, end)}
        return answer("runReport", identifier)


def _operation(body: bytes) -> ET.Element | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    soap_body = root.find(f"{{{SOAP}}}Body")
    return None if soap_body is None or len(soap_body) == 0 else soap_body[0]


# -- report generators ----------------------------------------------------------------------
CONTACT_COLUMNS = [
    "SKILL",
    "DATE",
    "HALF HOUR",
    "CALLS",
    "ANSWERED",
    "ABANDONED",
    "HANDLE TIME",
    "TALK TIME",
    "HOLD TIME",
    "AFTER CALL WORK TIME",
]
SKILLS = ("Sales EN", "Sales ES", "Service", "Claims Hotline")


def interval_numbers(skill: str, begins: datetime) -> dict:
    h = zlib.crc32(f"{skill}|{begins.isoformat()}".encode())
    calls = 5 + h % 60
    answered = calls - (h >> 6) % 5
    per_call = 240 + (h >> 9) % 1800  # the big skill's sums pass 24 hours
    handle = answered * per_call
    return {
        "offered": calls,
        "answered": answered,
        "abandoned": (calls - answered) // 2,
        "handle": handle,
        "talk": handle * 6 // 10,
        "hold": handle // 10,
        "acw": handle - handle * 6 // 10 - handle // 10,
    }


def contacts_report(zone: str, minutes: int = 30) -> Report:
    """An interval report: one row per skill and half hour starting in the window."""
    local = ZoneInfo(zone)

    def run(start: datetime, end: datetime) -> tuple[list[str], list[dict]]:
        rows = []
        for skill in SKILLS:
            begins = start
            while begins < end:
                numbers = interval_numbers(skill, begins)
                wall = begins.astimezone(local)
                rows.append(
                    {
                        "SKILL": skill,
                        "DATE": wall.strftime("%Y/%m/%d"),
                        "HALF HOUR": wall.strftime("%H:%M"),
                        "CALLS": str(numbers["offered"]),
                        "ANSWERED": str(numbers["answered"]),
                        "ABANDONED": str(numbers["abandoned"]),
                        "HANDLE TIME": hms(numbers["handle"]),
                        "TALK TIME": hms(numbers["talk"]),
                        "HOLD TIME": hms(numbers["hold"]),
                        "AFTER CALL WORK TIME": hms(numbers["acw"]),
                    }
                )
                begins += timedelta(minutes=minutes)
        return CONTACT_COLUMNS, rows

    return run


STATE_COLUMNS = ["AGENT", "STATE", "REASON CODE", "TIMESTAMP", "AGENT STATE TIME"]


def state_report(zone: str, states: list[dict]) -> Report:
    """An agent state report over given states (agent, state, reason, start UTC, seconds),
    selecting the states that start in the window, oldest first."""
    local = ZoneInfo(zone)

    def run(start: datetime, end: datetime) -> tuple[list[str], list[dict]]:
        rows = [
            {
                "AGENT": s["agent"],
                "STATE": s["state"],
                "REASON CODE": s.get("reason", ""),
                "TIMESTAMP": s["start"].astimezone(local).strftime("%a, %d %b %Y %H:%M:%S"),
                "AGENT STATE TIME": hms(s["seconds"]),
            }
            for s in sorted(states, key=lambda s: s["start"])
            if start <= s["start"] < end
        ]
        return STATE_COLUMNS, rows

    return run


def busy_agents(start: datetime, end: datetime, agents: int, every_s: int = 60) -> list[dict]:
    """Many short states: `agents` agents switching every `every_s` seconds."""
    states = []
    for number in range(agents):
        moment = start
        cycle = itertools.cycle(("Ready", "On Call", "After Call Work", "Not Ready"))
        while moment < end:
            state = next(cycle)
            states.append(
                {
                    "agent": f"agent{number:03d}@acme.example",
                    "state": state,
                    "reason": "Break" if state == "Not Ready" else "",
                    "start": moment,
                    "seconds": every_s,
                }
            )
            moment += timedelta(seconds=every_s)
    return states
