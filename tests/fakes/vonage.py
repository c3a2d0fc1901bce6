"""A fake Vonage Contact Center: the Authentication API's token endpoint and the Insights
Stats API's `/agent-activities` and `/interactions`, in the documented shapes (see
etl/resources/sources/vendors/vonage.py).

What makes real imports fail is here too: tokens that stop working long before their
announced two hours (`token_requests`), windows over 31 days refused with the documented
400, and an `upTo` that stops short of the requested end (`processed_span`) while the items
just after it are already returned, so they come again in the next window.
"""

from __future__ import annotations

import itertools
import urllib.parse
import zlib
from datetime import UTC, datetime, timedelta

from tests.fakes import FakeServer, Recorded, Reply

CLIENT_ID = "vcc-client"
ACCEPT = "application/vnd.newvoicemedia.v3+json"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class FakeVonage(FakeServer):
    def __init__(
        self,
        client_secret: str,
        token_requests: int | None = None,
        processed_span: timedelta | None = None,
        processed_until: datetime | None = None,
    ) -> None:
        super().__init__()
        self.client_secret = client_secret
        self.token_requests = token_requests  # a token stops working after this many calls
        self.processed_span = processed_span  # upTo moves at most this far per request
        self.processed_until = processed_until  # nothing after this is processed yet
        self.token_uses: dict[str, int] = {}
        self.served: dict[str, int] = {}  # item identity -> times served
        self.activities: list[dict] = []  # start as aware datetime, duration in ms or None
        self.interactions: list[dict] = []
        self.route("POST", "/Auth/connect/token", self._token)
        self.route("GET", "/stats/agent-activities", self._list(lambda: self.activities))
        self.route("GET", "/stats/interactions", self._list(lambda: self.interactions))

    def _token(self, request: Recorded) -> Reply:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != self.client_secret:
            return Reply(400, {"error": "invalid_client"})
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "stats":
            return Reply(400, {"error": "invalid_scope"})
        return Reply(
            200, {"access_token": self.issue_token(), "expires_in": 7200, "token_type": "Bearer"}
        )

    def _authorised(self, request: Recorded) -> bool:
        if not self.bearer_ok(request):
            return False
        token = request.headers["Authorization"][len("Bearer ") :]
        uses = self.token_uses[token] = self.token_uses.get(token, 0) + 1
        if self.token_requests is not None and uses > self.token_requests:
            self.tokens.discard(token)  # expired early, as real tokens sometimes are
            return False
        return True

    def _list(self, records):
        def handler(request: Recorded) -> Reply:
            if request.headers.get("Accept") != ACCEPT:
                return Reply(406, {"message": f"Accept must be {ACCEPT}"})
            if not self._authorised(request):
                return Reply(401, {"message": "Authorization has been denied for this request."})
            query = {k: v[-1] for k, v in request.query.items()}
            start = parse(query["start"])
            end = parse(query["end"]) if "end" in query else datetime.now(UTC)
            if end - start > timedelta(days=31):
                return Reply(400, {"message": "Request window size limit exceeded 31 days"})
            up_to = end
            if self.processed_span is not None:
                up_to = min(up_to, start + self.processed_span)
            if self.processed_until is not None:
                up_to = max(start, min(up_to, self.processed_until))
            # Items a little past upTo are already processed and returned: they come again in
            # the window that starts at upTo (the documented duplicates).
            shown_until = min(end, up_to + timedelta(minutes=10))
            chosen = sorted(
                (r for r in records() if start <= r["start"] < shown_until),
                key=lambda r: (r["start"], str(r.get("agentId") or r.get("guid"))),
            )
            limit = int(query.get("limit", 25))
            page = int(query.get("page", 1))
            count = max(1, -(-len(chosen) // limit))
            chunk = chosen[(page - 1) * limit : page * limit]
            for r in chunk:
                identity = str(r.get("guid") or (r.get("agentId"), r["start"]))
                self.served[identity] = self.served.get(identity, 0) + 1
            return Reply(
                200,
                {
                    "meta": {
                        "page": page,
                        "count": len(chunk),
                        "pageCount": count,
                        "totalCount": len(chosen),
                    },
                    "upTo": iso(up_to),
                    "items": [{**r, "start": iso(r["start"])} for r in chunk],
                },
            )

        return handler


SERVICES = ("Support", "Billing")
MEDIA = ("Phone", "Phone", "Phone", "Email", "Chat")


def make_interactions(start: datetime, end: datetime, every_s: int = 130) -> list[dict]:
    """Deterministic interactions starting in [start, end): inbound ones answered (talk,
    hold, wrap events on the agent's channel) or not, and some outbound ones."""
    items = []
    moment = start
    for number in itertools.count(1):
        if moment >= end:
            return items
        h = zlib.crc32(f"interaction{number}".encode())
        begins = moment + timedelta(milliseconds=h % 90_000)
        answered = (h >> 8) % 4 != 0
        talk, hold, wrap = 20_000 + (h >> 10) % 400_000, (h >> 12) % 40_000, (h >> 14) % 60_000
        external = {
            "guid": f"ext-{number}",
            "party": {"id": None, "role": "External", "touchpoint": "0123"},
            "events": [{"type": "Ringing", "offset": 0, "duration": 5_000}],
        }
        channels = [external]
        if answered:
            channels.append(
                {
                    "guid": f"agent-{number}",
                    "party": {"id": f"a{h % 7}", "role": "Agent", "touchpoint": "a"},
                    "events": [
                        {"type": "Ringing", "offset": 0, "duration": 3_000},
                        {"type": "Connected", "offset": 3_000, "duration": talk},
                        {"type": "Held", "offset": 3_000 + talk, "duration": hold},
                        {"type": "Wrap", "offset": 3_000 + talk + hold, "duration": wrap},
                    ],
                }
            )
        items.append(
            {
                "guid": f"i-{number:05d}",
                "status": "Completed",
                "medium": MEDIA[(h >> 16) % len(MEDIA)],
                "direction": "Outbound" if (h >> 20) % 9 == 0 else "Inbound",
                "start": begins,
                "duration": talk + hold + wrap,
                "serviceName": SERVICES[(h >> 24) % len(SERVICES)],
                "channels": channels,
            }
        )
        moment += timedelta(seconds=every_s)
    return items
