"""A fake UJET Manager API (`/manager/api/v1`) in the documented shapes (see
etl/resources/sources/vendors/ujet.py): HTTP Basic with the company key and secret, lists
paged by `page` / `per` with the next page in a `Link: <...>; rel="next"` header, filtered
by `<field>[from]` / `<field>[to]`.

Records are kept with aware UTC datetimes and rendered as UJET does (ISO 8601 with `Z`).
"""

from __future__ import annotations

import base64
import itertools
import urllib.parse
import zlib
from datetime import UTC, datetime, timedelta

from tests.fakes import FakeServer, Recorded, Reply

COMPANY_KEY = "acme-company-key"
BASE = "/manager/api/v1"
FILTER_FIELD = {"calls": "created_at", "chats": "created_at", "agent_activity_logs": "started_at"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def render(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    return value


class FakeUjet(FakeServer):
    def __init__(self, company_secret: str, max_per: int = 100) -> None:
        super().__init__()
        self.company_secret = company_secret
        self.max_per = max_per
        self.data: dict[str, list[dict]] = {
            "agents": [],
            "agent_activity_logs": [],
            "calls": [],
            "chats": [],
        }
        self.route("GET", BASE + "/", self._list)

    def _list(self, request: Recorded) -> Reply:
        expected = base64.b64encode(f"{COMPANY_KEY}:{self.company_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return Reply(401, {"error": "Unauthorized", "message": "Invalid company key/secret"})
        kind = request.path[len(BASE) + 1 :]
        if kind not in self.data:
            return Reply(404, {"message": f"no endpoint {kind}"})
        query = {k: v[-1] for k, v in request.query.items()}
        records = self.data[kind]
        field = FILTER_FIELD.get(kind)
        if field and f"{field}[from]" in query:
            low = datetime.fromisoformat(query[f"{field}[from]"].replace("Z", "+00:00"))
            high = datetime.fromisoformat(query[f"{field}[to]"].replace("Z", "+00:00"))
            records = [r for r in records if low <= r[field] < high]
            records = sorted(records, key=lambda r: (r[field], r["id"]))
        per = min(int(query.get("per", 25)), self.max_per)
        page = int(query.get("page", 1))
        chunk = records[(page - 1) * per : page * per]
        headers = {"total": str(len(records)), "per-page": str(per)}
        if page * per < len(records):
            following = urllib.parse.urlencode({**query, "page": page + 1})
            headers["Link"] = (
                f'<{self.url}{request.path}?{following}>; rel="next", '
                f"<{self.url}{request.path}?{urllib.parse.urlencode({**query, 'page': 1})}>; "
                'rel="first"'
            )
        return Reply(200, [render(r) for r in chunk], headers)


QUEUES = ({"id": 11, "name": "Support"}, {"id": 12, "name": "Sales"})


def make_contacts(
    kind: str, start: datetime, end: datetime, every_s: int = 170, first_id: int = 1
) -> list[dict]:
    """Deterministic calls or chats created in [start, end): some answered, some abandoned,
    some never queued (outbound), a few still waiting."""
    contacts = []
    moment = start
    for number in itertools.count(first_id):
        if moment >= end:
            return contacts
        h = zlib.crc32(f"{kind}{number}".encode())
        created = moment + timedelta(seconds=h % 60)
        queued = created + timedelta(seconds=(h >> 4) % 90)
        wait = (h >> 8) % 240
        fate = (h >> 12) % 10  # 0-5 answered, 6-7 abandoned, 8 outbound, 9 still waiting
        if kind == "chats" and fate == 8:
            fate = 0  # chats are all inbound here
        talk = 30 + (h >> 16) % 500
        hold = (h >> 20) % 50 if kind == "calls" else 0
        record = {
            "id": number,
            "status": "finished",
            "created_at": created,
            "queued_at": None if fate == 8 else queued,
            "connected_at": None,
            "ends_at": None,
            "queue_duration": wait,
            "selected_menu": QUEUES[(h >> 24) % len(QUEUES)],
            "menu_path": {"name": "Support"},
        }
        if kind == "calls":
            record.update(call_type="Voice Inbound (App)", call_duration=0, hold_duration=0)
        else:
            record.update(chat_type="Messaging Inbound (App Chat)", chat_duration=0)
            record["assigned_at"] = None
            record.pop("connected_at")
        if fate <= 5:
            answered = queued + timedelta(seconds=wait)
            record["connected_at" if kind == "calls" else "assigned_at"] = answered
            record["ends_at"] = answered + timedelta(seconds=talk + hold)
            record["call_duration" if kind == "calls" else "chat_duration"] = talk
            if kind == "calls":
                record["hold_duration"] = hold
        elif fate <= 7:
            record["ends_at"] = queued + timedelta(seconds=wait)
        elif fate == 8:
            record.update(call_type="Voice Outbound", selected_menu=None)
        else:
            record["status"] = "queued"
        if kind == "chats":  # the documented chat model has no queued_at: queued when created
            record.pop("queued_at")
            record["created_at"] = queued
        contacts.append(record)
        moment += timedelta(seconds=every_s)
    return contacts
