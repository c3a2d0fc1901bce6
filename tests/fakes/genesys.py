"""A fake Genesys Cloud: OAuth client credentials, conversation aggregates, routing queues,
user details and users, in the documented shapes (see
etl/resources/sources/vendors/genesys_cloud.py).

Aggregate numbers are a pure function of (queue, mediaType, bucket start), so a test can
compute the totals it expects with `expected_contacts`. Durations are milliseconds with a
fractional part in seconds, as Genesys sends them.
"""

from __future__ import annotations

import base64
import urllib.parse
import zlib
from datetime import datetime

import pandas as pd

from etl.resources.sources.simulator.simulator import interval_starts
from tests.fakes import FakeServer, Recorded, Reply

CLIENT_ID = "wfm-client"
QUEUES = [
    (f"5c1e0f2a-0000-4000-8000-00000000000{i}", name)
    for i, name in enumerate(["Sales", "Support", "Billing", "Retention", "Claims"], start=1)
]
MEDIA = ["voice", "callback", "chat", "message", "email", "video"]
GRANULARITY = {"PT15M": 15, "PT30M": 30, "PT1H": 60}
REQUIRED_METRICS = {"nOffered", "tAnswered", "tAbandon", "tHandle"}


def cell(queue: str, media: str, start: pd.Timestamp) -> dict | None:
    """The numbers of one bucket (None: Genesys leaves empty buckets out)."""
    h = zlib.crc32(f"{queue}|{media}|{start.isoformat()}".encode())
    if h % 5 == 0:
        return None
    offered = 1 + h % 9
    answered = max(offered - (h >> 4) % 3, 0)
    abandoned = min(offered - answered, (h >> 7) % 2 + (offered - answered) // 2)
    handle_ms = answered * (60_000 + (h >> 9) % 240_000) + (h >> 21) % 1000 * (answered > 0)
    return {
        "offered": offered,
        "answered": answered,
        "abandoned": abandoned,
        "handle_ms": handle_ms,
        "talk_ms": handle_ms * 7 // 10,
        "hold_ms": handle_ms // 20,
        "acw_ms": handle_ms - handle_ms * 7 // 10 - handle_ms // 20,
    }


def _metrics(numbers: dict) -> list[dict]:
    def timed(name: str, count: int, total: int) -> dict:
        return {"metric": name, "stats": {"max": total, "min": 0, "count": count, "sum": total}}

    metrics = [{"metric": "nOffered", "stats": {"count": numbers["offered"]}}]
    if numbers["answered"]:
        ms = numbers["handle_ms"]
        metrics += [
            timed("tAnswered", numbers["answered"], 4_000 * numbers["answered"]),
            timed("tHandle", numbers["answered"], ms),
            timed("tTalkComplete", numbers["answered"], numbers["talk_ms"]),
            timed("tHeldComplete", numbers["answered"], numbers["hold_ms"]),
            timed("tAcw", numbers["answered"], numbers["acw_ms"]),
        ]
    if numbers["abandoned"]:
        metrics.append(timed("tAbandon", numbers["abandoned"], 9_000 * numbers["abandoned"]))
    return metrics


def iso(moment: pd.Timestamp) -> str:
    return moment.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.000Z")


def expected_contacts(
    start: datetime,
    end: datetime,
    minutes: int,
    timezone: str,
    channels: dict[str, str],
    queues: list[str] | None = None,
) -> pd.DataFrame:
    """Canonical rows the fake's data should become for intervals starting in [start, end)."""
    rows = []
    for begins in interval_starts(start, end, minutes, timezone):
        for queue, _ in QUEUES:
            if queues and queue not in queues:
                continue
            for media in MEDIA:
                numbers = cell(queue, media, begins)
                if numbers is None or media not in channels:
                    continue
                rows.append(
                    {
                        "external_queue_id": queue,
                        "channel": channels[media],
                        "interval_start": begins,
                        "offered": numbers["offered"],
                        "answered": numbers["answered"],
                        "abandoned": numbers["abandoned"],
                        "handle_time_s": numbers["handle_ms"] / 1000,
                        "acw_time_s": numbers["acw_ms"] / 1000 if numbers["answered"] else None,
                    }
                )
    frame = pd.DataFrame(rows)
    key = ["external_queue_id", "channel", "interval_start"]
    return frame.groupby(key).sum(min_count=1).reset_index().sort_values(key, ignore_index=True)


class FakeGenesys(FakeServer):
    """Routes: /oauth/token, aggregates, routing queues, user details, users."""

    def __init__(
        self,
        client_secret: str,
        max_interval_hours: int = 168,
        page_size_cap: int = 100,
        token_lifetime_s: int = 86_399,
    ) -> None:
        super().__init__()
        self.client_secret = client_secret
        self.max_interval_hours = max_interval_hours
        self.page_size_cap = page_size_cap
        self.token_lifetime_s = token_lifetime_s
        self.user_details: list[dict] = []
        self.users: dict[str, dict] = {}
        self.route("POST", "/oauth/token", self._token)
        self.route("POST", "/api/v2/analytics/conversations/aggregates/query", self._aggregates)
        self.route("GET", "/api/v2/routing/queues", self._queues)
        self.route("POST", "/api/v2/analytics/users/details/query", self._details)
        self.route("GET", "/api/v2/users", self._users)

    # -- auth ---------------------------------------------------------------------------------
    def _token(self, request: Recorded) -> Reply:
        expected = base64.b64encode(f"{CLIENT_ID}:{self.client_secret}".encode()).decode()
        form = urllib.parse.parse_qs(request.body.decode())
        if request.headers.get("Authorization") != f"Basic {expected}":
            return Reply(401, {"error": "invalid_client", "description": "client not found"})
        if form.get("grant_type") != ["client_credentials"]:
            return Reply(400, {"error": "unsupported_grant_type"})
        token = self.issue_token()
        return Reply(
            200,
            {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime_s},
        )

    def _unauthorized(self, request: Recorded) -> Reply | None:
        if self.bearer_ok(request):
            return None
        return Reply(401, {"message": "Invalid login credentials.", "code": "bad.credentials"})

    # -- analytics ----------------------------------------------------------------------------
    def _interval(self, text: str) -> tuple[pd.Timestamp, pd.Timestamp] | Reply:
        try:
            first, last = (pd.Timestamp(part).tz_convert("UTC") for part in text.split("/"))
        except (ValueError, TypeError):
            return Reply(400, {"message": f"bad interval {text!r}", "code": "bad.request"})
        if last - first > pd.Timedelta(hours=self.max_interval_hours):
            return Reply(400, {"message": "interval too long", "code": "bad.request"})
        return first, last

    def _aggregates(self, request: Recorded) -> Reply:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = request.json()
        span = self._interval(body.get("interval", ""))
        if isinstance(span, Reply):
            return span
        minutes = GRANULARITY.get(body.get("granularity"))
        if minutes is None or body.get("groupBy") != ["queueId", "mediaType"]:
            return Reply(400, {"message": "bad granularity or groupBy", "code": "bad.request"})
        if not set(body.get("metrics", [])) >= REQUIRED_METRICS:
            return Reply(400, {"message": "missing metrics", "code": "bad.request"})
        zone = body.get("timeZone", "UTC")
        first, last = span
        local = first.tz_convert(zone)
        if (local.hour * 60 + local.minute) % minutes or (last - first) % pd.Timedelta(
            minutes=minutes
        ):
            return Reply(400, {"message": "interval not on the granularity grid", "code": "x"})
        wanted = {
            p["value"]
            for p in (body.get("filter") or {}).get("predicates", [])
            if p.get("dimension") == "queueId"
        }
        results = []
        for queue, _ in QUEUES:
            if wanted and queue not in wanted:
                continue
            for media in MEDIA:
                data = []
                begins = first
                while begins < last:
                    numbers = cell(queue, media, begins)
                    ends = begins + pd.Timedelta(minutes=minutes)
                    if numbers is not None:
                        data.append(
                            {"interval": f"{iso(begins)}/{iso(ends)}", "metrics": _metrics(numbers)}
                        )
                    begins = ends
                if data:
                    results.append({"group": {"queueId": queue, "mediaType": media}, "data": data})
        return Reply(200, {"results": results})

    def _paged(self, request: Recorded, entities: list[dict]) -> Reply:
        size = min(int(request.query.get("pageSize", ["25"])[0]), self.page_size_cap)
        number = int(request.query.get("pageNumber", ["1"])[0])
        page = entities[(number - 1) * size : number * size]
        count = max((len(entities) + size - 1) // size, 1)
        return Reply(
            200,
            {
                "entities": page,
                "pageSize": size,
                "pageNumber": number,
                "total": len(entities),
                "pageCount": count,
            },
        )

    def _queues(self, request: Recorded) -> Reply:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        return self._paged(request, [{"id": q, "name": name} for q, name in QUEUES])

    def _details(self, request: Recorded) -> Reply:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = request.json()
        span = self._interval(body.get("interval", ""))
        if isinstance(span, Reply):
            return span
        first, last = span

        def overlaps(record: dict) -> bool:
            begins = pd.Timestamp(record["startTime"])
            ends = pd.Timestamp(record["endTime"]) if record.get("endTime") else None
            return begins < last and (ends is None or ends > first)

        hits = []
        for detail in self.user_details:
            presence = [r for r in detail.get("primaryPresence", []) if overlaps(r)]
            routing = [r for r in detail.get("routingStatus", []) if overlaps(r)]
            if presence or routing:
                hits.append(
                    {
                        "userId": detail["userId"],
                        "primaryPresence": presence,
                        "routingStatus": routing,
                    }
                )
        paging = body.get("paging") or {}
        size = min(int(paging.get("pageSize", 25)), self.page_size_cap)
        number = int(paging.get("pageNumber", 1))
        page = hits[(number - 1) * size : number * size]
        answer: dict = {"totalHits": len(hits)}
        if page:
            answer["userDetails"] = page
        return Reply(200, answer)

    def _users(self, request: Recorded) -> Reply:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        ids = request.query.get("id", [])
        chosen = [u for key, u in sorted(self.users.items()) if not ids or key in ids]
        return self._paged(request, chosen)


def at(text: str) -> str:
    """A Genesys timestamp for a UTC time given as 'YYYY-MM-DD HH:MM[:SS]'."""
    return pd.Timestamp(text, tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.000Z")
