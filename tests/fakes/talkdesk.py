"""A fake Talkdesk Explore API: OAuth client credentials and report jobs (create, poll,
download), in the documented shapes (see etl/resources/sources/vendors/talkdesk.py).

The fake keeps true UTC times and renders them as Talkdesk does: call times in UTC with a
`Z`, status times as naive local times of the job's timezone. Records are selected by their
end time, as the documentation says; files are served in pages linked by `_links.next`.
"""

from __future__ import annotations

import base64
import itertools
import urllib.parse
import zlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.fakes import FakeServer, Recorded, Reply

CLIENT_ID = "td-client"
LOCAL = "%Y-%m-%d %H:%M:%S"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeTalkdesk(FakeServer):
    def __init__(self, client_secret: str, page_size: int = 25, polls_before_done: int = 2):
        super().__init__()
        self.client_secret = client_secret
        self.page_size = page_size
        self.polls_before_done = polls_before_done
        self.calls_data: list[dict] = []  # start_at / end_at as aware UTC datetimes
        self.statuses: list[dict] = []  # start / end as aware UTC datetimes (end may be None)
        self.jobs: dict[str, dict] = {}
        self.fail_jobs = False
        self.ids = itertools.count(1)
        self.route("POST", "/oauth/token", self._token)
        self.route("POST", "/data/reports/", self._create)
        self.route("GET", "/data/reports/", self._get)

    def _token(self, request: Recorded) -> Reply:
        expected = base64.b64encode(f"{CLIENT_ID}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return Reply(401, {"code": "1002", "message": "Invalid client credentials"})
        form = urllib.parse.parse_qs(request.body.decode())
        if "data-reports:read" not in form.get("scope", [""])[0]:
            return Reply(400, {"message": "scope data-reports:read required"})
        return Reply(200, {"access_token": self.issue_token(), "expires_in": 600})

    def _denied(self, request: Recorded) -> Reply | None:
        if self.bearer_ok(request):
            return None
        return Reply(401, {"code": "0401", "message": "Unauthorized"})

    # -- jobs ---------------------------------------------------------------------------------
    def _create(self, request: Recorded) -> Reply:
        if (denied := self._denied(request)) is not None:
            return denied
        kind = request.path.split("/")[3]
        body = request.json()
        zone = ZoneInfo(body["timezone"])
        if body.get("format") != "json" or kind not in ("calls", "user_status"):
            return Reply(400, {"message": "unsupported report or format"})
        first = datetime.strptime(body["timespan"]["from"], LOCAL).replace(tzinfo=zone)
        last = datetime.strptime(body["timespan"]["to"], LOCAL).replace(tzinfo=zone)
        job_id = f"job{next(self.ids):04d}"
        self.jobs[job_id] = {
            "kind": kind,
            "zone": zone,
            "first": first.astimezone(UTC),
            "last": last.astimezone(UTC),
            "polls": 0,
            "body": body,
        }
        job = {
            "id": job_id,
            "name": body.get("name"),
            "timezone": body["timezone"],
            "status": "created",
            "format": "json",
            "timespan": body["timespan"],
        }
        return Reply(202, {"job": job, "_links": self._links(kind, job_id)})

    def _links(self, kind: str, job_id: str) -> dict:
        return {
            "self": {"href": f"{self.url}/data/reports/{kind}/jobs/{job_id}"},
            "files": {"href": f"{self.url}/data/reports/{kind}/files/{job_id}"},
        }

    def _get(self, request: Recorded) -> Reply:
        if (denied := self._denied(request)) is not None:
            return denied
        _, _, _, kind, what, job_id = request.path.split("/")[:6]
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, {"message": "job not found"})
        if what == "jobs":
            job["polls"] += 1
            status = "processing" if job["polls"] <= self.polls_before_done else "done"
            if self.fail_jobs:
                status = "failed"
            body = {"job": {"id": job_id, "status": status}, "_links": self._links(kind, job_id)}
            if status == "done":
                return Reply(303, body, {"Location": f"/data/reports/{kind}/files/{job_id}"})
            return Reply(200, body)
        entries = self._entries(job)
        page = int(request.query.get("page", ["1"])[0])
        chunk = entries[(page - 1) * self.page_size : page * self.page_size]
        answer: dict = {"type": kind, "version": "v1", "total": len(entries), "entries": chunk}
        if page * self.page_size < len(entries):
            answer["_links"] = {
                "next": {"href": f"/data/reports/{kind}/files/{job_id}?page={page + 1}"}
            }
        return Reply(200, answer)

    def _entries(self, job: dict) -> list[dict]:
        first, last, zone = job["first"], job["last"], job["zone"]
        if job["kind"] == "calls":
            return [
                {
                    **{k: v for k, v in call.items() if k not in ("start_at", "end_at")},
                    "start_at": call["start_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end_at": call["end_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                for call in self.calls_data
                if first <= call["end_at"] <= last
            ]
        rows = []
        for status in self.statuses:
            end = status["end"]
            if end is not None and not first <= end <= last:
                continue
            if end is None and status["start"] > last:
                continue
            rows.append(
                {
                    "user_id": status["user_id"],
                    "user_name": status.get("user_name", ""),
                    "user_email": status["user_email"],
                    "status_label": status["label"],
                    "status_start_at": status["start"].astimezone(zone).strftime(LOCAL),
                    "status_end_at": end.astimezone(zone).strftime(LOCAL) if end else None,
                    "status_time": int((end - status["start"]).total_seconds()) if end else None,
                    "is_user_active": True,
                }
            )
        return rows


TYPES = (
    "inbound",
    "inbound",
    "inbound",
    "missed",
    "abandoned",
    "short_abandoned",
    "voicemail",
    "outbound",
    "outbound_missed",
)
RING_GROUPS = ("support", "sales,support", "billing", "")


def make_calls(start: datetime, end: datetime, every_s: int = 240) -> list[dict]:
    """Deterministic calls starting in [start, end), one every `every_s` seconds or so."""
    calls = []
    moment = start
    for number in itertools.count():
        if moment >= end:
            return calls
        h = zlib.crc32(f"call{number}".encode())
        kind = TYPES[h % len(TYPES)]
        talk = 30 + h % 600 if kind in ("inbound", "outbound") else 0
        hold = (h >> 10) % 60 if kind == "inbound" else 0
        wait = (h >> 16) % 120
        begins = moment + timedelta(seconds=(h >> 5) % 200)
        calls.append(
            {
                "call_id": f"c{number:05d}",
                "type": kind,
                "start_at": begins,
                "end_at": begins + timedelta(seconds=wait + talk + hold),
                "talk_time": talk,
                "hold_time": hold,
                "wait_time": wait,
                "ring_groups": RING_GROUPS[(h >> 3) % len(RING_GROUPS)],
                "user_email": "agent@example.com" if talk else None,
            }
        )
        moment += timedelta(seconds=every_s)
    return calls
