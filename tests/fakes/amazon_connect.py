"""A fake Amazon Connect API: `GetMetricDataV2` (`POST /metrics/data`) and `ListQueues`
(`GET /queues-summary/{InstanceId}`) in the documented shapes, behind AWS Signature
Version 4.

Every request's signature is recomputed with botocore's signer (the same algorithm, from
the signed headers the request names, its `X-Amz-Date` and the known secret) and compared;
a wrongly signed or expired request gets 403 as from AWS. The fake keeps single contacts
and aggregates them per queue, channel and interval on the request's `TimeZone` grid, so
it answers any window the way Connect would, and enforces the documented limits (a window
of 3 days or more, an EndTime in the future, more than 100 filter values: 400).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes import FakeServer, Recorded, Reply

ACCESS_KEY = "AKIAFAKECONNECT00001"
REGION = "eu-central-1"
INSTANCE_ID = "11111111-2222-3333-4444-555555555555"
INSTANCE_ARN = f"arn:aws:connect:{REGION}:123456789012:instance/{INSTANCE_ID}"
PERIODS = {"FIFTEEN_MIN": 15, "THIRTY_MIN": 30, "HOUR": 60}
AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$"
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def interval_of(moment: datetime, minutes: int, zone: str) -> datetime:
    """Start (UTC) of the local `minutes` interval holding `moment`, on elapsed time."""
    local = moment.astimezone(ZoneInfo(zone))
    into = (local.hour * 60 + local.minute) % minutes
    return moment - timedelta(minutes=into, seconds=local.second, microseconds=local.microsecond)


class FakeConnect(FakeServer):
    def __init__(self, secret_key: str, now: datetime) -> None:
        super().__init__()
        self.secret_key = secret_key
        self.now = now  # the fake's "current time" for the EndTime rule
        self.queues = [
            {"Id": "q-support", "Name": "Support", "QueueType": "STANDARD"},
            {"Id": "q-sales", "Name": "Sales", "QueueType": "STANDARD"},
            {"Id": "q-agent", "Name": "Agent queue", "QueueType": "AGENT"},
        ]
        self.contacts: list[dict] = []  # queue, channel, queued_at, handled, abandoned, seconds
        self.route("POST", "/metrics/data", self._metrics)
        self.route("GET", "/queues-summary/", self._list_queues)

    # -- SigV4 --------------------------------------------------------------------------------
    def signature_problem(self, request: Recorded) -> str | None:
        match = AUTH.match(request.headers.get("Authorization", ""))
        if not match:
            return "Missing Authentication Token"
        key, day, region, service, signed, signature = match.groups()
        if key != ACCESS_KEY:
            return "The security token included in the request is invalid."
        stamp = request.headers.get("X-Amz-Date", "")
        try:
            sent = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "X-Amz-Date is missing or malformed"
        if abs(datetime.now(UTC) - sent) > timedelta(minutes=5) or stamp[:8] != day:
            return "Signature expired"
        if (region, service) != (REGION, "connect"):
            return "Credential should be scoped to a valid region and service"
        wanted = signed.split(";")
        received = {k.lower(): v for k, v in request.headers.items()}
        headers = {name: received.get(name, "") for name in wanted}
        copy = AWSRequest(
            method=request.method,
            url=f"http://{received.get('host', '')}{request.target}",
            data=request.body,
            headers=headers,
        )
        copy.context["timestamp"] = stamp
        signer = SigV4Auth(
            Credentials(ACCESS_KEY, self.secret_key, received.get("x-amz-security-token")),
            service,
            region,
        )
        canonical = signer.canonical_request(copy)
        expected = signer.signature(signer.string_to_sign(copy, canonical), copy)
        if expected != signature:
            return (
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method."
            )
        return None

    def _denied(self, request: Recorded) -> Reply | None:
        problem = self.signature_problem(request)
        if problem is None:
            return None
        return Reply(403, {"message": problem}, {"x-amzn-ErrorType": "AccessDeniedException"})

    # -- ListQueues ---------------------------------------------------------------------------
    def _list_queues(self, request: Recorded) -> Reply:
        if (denied := self._denied(request)) is not None:
            return denied
        if request.path.rsplit("/", 1)[-1] != INSTANCE_ID:
            return Reply(404, {"message": "Instance not found"})
        types = request.query.get("queueTypes", [])
        chosen = [q for q in self.queues if not types or q["QueueType"] in types]
        size = int(request.query.get("maxResults", ["100"])[0])
        offset = int(request.query.get("nextToken", ["0"])[0])
        answer: dict = {"QueueSummaryList": chosen[offset : offset + min(size, 1)]}
        if offset + 1 < len(chosen):
            answer["NextToken"] = str(offset + 1)  # one queue a page: paging is exercised
        return Reply(200, answer)

    # -- GetMetricDataV2 ----------------------------------------------------------------------
    def _metrics(self, request: Recorded) -> Reply:
        if (denied := self._denied(request)) is not None:
            return denied
        body = request.json()
        start = datetime.fromtimestamp(body["StartTime"], UTC)
        end = datetime.fromtimestamp(body["EndTime"], UTC)
        period = body["Interval"]["IntervalPeriod"]
        zone = body["Interval"]["TimeZone"]
        invalid = None
        if body.get("ResourceArn") != INSTANCE_ARN:
            invalid = "ResourceArn is not an instance of this account"
        elif end - start >= timedelta(days=3):
            invalid = "The difference between StartTime and EndTime must be less than 3 days"
        elif end > self.now:
            invalid = "EndTime cannot be later than the current timestamp"
        elif any(len(f["FilterValues"]) > 100 for f in body["Filters"]):
            invalid = "FilterValues has more than 100 values"
        elif body.get("Groupings") != ["QUEUE", "CHANNEL"] or period not in PERIODS:
            invalid = "unsupported Groupings or IntervalPeriod for this fake"
        if invalid:
            return Reply(400, {"message": invalid}, {"x-amzn-ErrorType": "InvalidRequestException"})
        queues = {
            v for f in body["Filters"] if f["FilterKey"] == "QUEUE" for v in f["FilterValues"]
        }
        results = self._aggregate(queues, start, end, PERIODS[period], zone, body["Metrics"])
        size = body.get("MaxResults", 100)
        query = {k: v for k, v in body.items() if k != "NextToken"}
        digest = hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:12]
        offset = 0
        if body.get("NextToken"):
            token = json.loads(base64.b64decode(body["NextToken"]))
            if token["query"] != digest:
                return Reply(400, {"message": "NextToken does not belong to this request"})
            offset = token["offset"]
        answer: dict = {"MetricResults": results[offset : offset + size]}
        if offset + size < len(results):
            token = {"query": digest, "offset": offset + size}
            answer["NextToken"] = base64.b64encode(json.dumps(token).encode()).decode()
        return Reply(200, answer)

    def _aggregate(
        self, queues: set, start: datetime, end: datetime, minutes: int, zone: str, metrics: list
    ) -> list[dict]:
        sums: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for c in self.contacts:
            if c["queue"] not in queues or not start <= c["queued_at"] < end:
                continue
            key = (c["queue"], c["channel"], interval_of(c["queued_at"], minutes, zone))
            total = sums[key]
            total["CONTACTS_QUEUED"] += 1
            total["CONTACTS_HANDLED"] += int(c["handled"])
            total["CONTACTS_ABANDONED"] += int(c["abandoned"])
            total["SUM_HANDLE_TIME"] += c["handle_s"] if c["handled"] else 0
            total["SUM_HOLD_TIME"] += c["hold_s"] if c["handled"] else 0
            total["SUM_AFTER_CONTACT_WORK_TIME"] += c["acw_s"] if c["handled"] else 0
        names = [m["Name"] for m in metrics]
        return [
            {
                "Dimensions": {"QUEUE": queue, "CHANNEL": channel},
                "MetricInterval": {
                    "Interval": next(k for k, v in PERIODS.items() if v == minutes),
                    "StartTime": begins.timestamp(),
                    "EndTime": (begins + timedelta(minutes=minutes)).timestamp(),
                },
                "Collections": [
                    # Connect answers null where it cannot compute (no handled contacts).
                    {"Metric": {"Name": n}, "Value": total.get(n) if total.get(n) else None}
                    for n in names
                ],
            }
            for (queue, channel, begins), total in sorted(sums.items())
        ]


def make_contacts(start: datetime, end: datetime, every_s: int = 75) -> list[dict]:
    """Deterministic contacts queued in [start, end) on two queues and two channels."""
    contacts = []
    moment, number = start, 0
    while moment < end:
        h = zlib.crc32(f"connect{number}".encode())
        handled = h % 5 != 0
        contacts.append(
            {
                "queue": ("q-support", "q-sales")[(h >> 4) % 2],
                "channel": ("VOICE", "VOICE", "CHAT")[(h >> 6) % 3],
                "queued_at": moment + timedelta(seconds=h % 60),
                "handled": handled,
                "abandoned": not handled and (h >> 9) % 3 != 0,
                "handle_s": 40 + (h >> 10) % 700,
                "hold_s": (h >> 14) % 60,
                "acw_s": (h >> 18) % 90,
            }
        )
        moment += timedelta(seconds=every_s)
        number += 1
    return contacts


def agent_event(
    user: str, kind: str, at: str, status: str = "Available", contact: str | None = None, **extra
) -> dict:
    """One agent event stream record in the documented shape (Version 2019-05-25)."""
    moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    snapshot = {
        "AgentStatus": {
            "ARN": f"arn:aws:connect:{REGION}:123456789012:instance/{INSTANCE_ID}/agent-state/x",
            "Name": status,
            "StartTimestamp": stamp,
        },
        "Configuration": {
            "AgentHierarchyGroups": None,
            "FirstName": user.split(".")[0].title(),
            "LastName": "Agent",
            "RoutingProfile": {"Name": "Basic Routing Profile"},
            "Username": user,
        },
        "Contacts": [{"ContactId": "c-1", "Channel": "VOICE", "State": contact}] if contact else [],
    }
    return {
        "AWSAccountId": "123456789012",
        "AgentARN": f"arn:aws:connect:{REGION}:123456789012:instance/{INSTANCE_ID}/agent/{user}",
        "CurrentAgentSnapshot": snapshot,
        "EventId": extra.get("event_id", f"{user}-{kind}-{stamp}"),
        "EventTimestamp": stamp,
        "EventType": kind,
        "InstanceARN": INSTANCE_ARN,
        "PreviousAgentSnapshot": None,
        "Version": "2019-05-25",
    }
