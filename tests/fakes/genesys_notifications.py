"""A fake Genesys Cloud with the Notifications API: channels, subscriptions and a real
WebSocket server on loopback (the `websockets` library), in the documented shapes (see
etl/resources/sources/vendors/genesys_notifications.py).

A test changes a user's presence or routing status with `presence` / `routing`: the user's
current state (GET /api/v2/users?expand=presence,routingStatus), the analytics records
(users details query) and, unless `notify=False`, a notification on every socket subscribed
to the topic all follow, so the live path and the hourly import see the same history.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Request, Response, ServerConnection, serve

from tests.fakes import Recorded, Reply
from tests.fakes.genesys import FakeGenesys

CHANNELS = "/api/v2/notifications/channels"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeGenesysNotifications(FakeGenesys):
    """FakeGenesys plus channels, subscriptions and sockets."""

    def __init__(
        self, client_secret: str, heartbeat_s: float = 30.0, channel_lifetime_s: float = 86_400
    ) -> None:
        super().__init__(client_secret)
        self.heartbeat_s = heartbeat_s
        self.channel_lifetime_s = channel_lifetime_s
        self.channels: dict[str, set[str]] = {}  # channel id -> topics
        self.sockets: dict[str, list[ServerConnection]] = {}
        self.connections = 0  # sockets opened so far
        self.refused = 0  # handshakes refused (unknown channel)
        self.numbers = itertools.count(1)
        self.route("POST", CHANNELS, self._channel)
        self.route("PUT", CHANNELS + "/", self._subscribe)
        self.ws = serve(self._socket, "127.0.0.1", 0, process_request=self._handshake)
        self.ws_thread = threading.Thread(target=self.ws.serve_forever, daemon=True)

    @property
    def ws_url(self) -> str:
        host, port = self.ws.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    def __enter__(self) -> FakeGenesysNotifications:
        super().__enter__()
        self.ws_thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.shutdown()
        self.ws_thread.join(timeout=5)
        super().__exit__(*exc)

    # -- the REST side --------------------------------------------------------------------
    def _channel(self, request: Recorded) -> Reply:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        channel = f"streaming-{next(self.numbers)}-fake"
        with self.lock:
            self.channels[channel] = set()
        expires = datetime.now(UTC) + timedelta(seconds=self.channel_lifetime_s)
        return Reply(
            200,
            {
                "connectUri": f"{self.ws_url}/channels/{channel}",
                "id": channel,
                "expires": stamp(expires),
            },
        )

    def _subscribe(self, request: Recorded) -> Reply:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        parts = request.path.split("/")  # /api/v2/notifications/channels/{id}/subscriptions
        channel = parts[5] if len(parts) == 7 and parts[6] == "subscriptions" else ""
        topics = [t["id"] for t in request.json()]
        if channel not in self.channels:
            return Reply(404, {"message": f"channel {channel} not found", "code": "not.found"})
        if len(topics) > 1000:
            return Reply(400, {"message": "too many topics", "code": "bad.request"})
        with self.lock:
            self.channels[channel] = set(topics)
        entities = [{"id": t, "state": "Permitted"} for t in topics]
        return Reply(200, {"entities": entities})

    # -- the socket -----------------------------------------------------------------------
    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        channel = request.path.rsplit("/", 1)[-1]
        if channel not in self.channels:
            self.refused += 1
            return connection.respond(404, f"no channel {channel}\n")
        return None

    def _socket(self, connection: ServerConnection) -> None:
        channel = connection.request.path.rsplit("/", 1)[-1]
        with self.lock:
            self.sockets.setdefault(channel, []).append(connection)
            self.connections += 1
        try:
            while True:
                try:
                    raw = connection.recv(timeout=self.heartbeat_s)
                except TimeoutError:
                    self._send(connection, "channel.metadata", {"message": "WebSocket Heartbeat"})
                    continue
                if json.loads(raw).get("message") == "ping":
                    self._send(connection, "channel.metadata", {"message": "pong"})
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                self.sockets[channel].remove(connection)

    @staticmethod
    def _send(connection: ServerConnection, topic: str, body: dict) -> None:
        with contextlib.suppress(ConnectionClosed):
            connection.send(json.dumps({"topicName": topic, "version": "2", "eventBody": body}))

    def publish(self, topic: str, body: dict) -> int:
        """Send a notification to every socket subscribed to `topic`; how many got it."""
        with self.lock:
            targets = [
                c
                for ch, topics in self.channels.items()
                if topic in topics
                for c in self.sockets.get(ch, [])
            ]
        for connection in targets:
            self._send(connection, topic, body)
        return len(targets)

    def drop(self) -> None:
        """Close every socket (a network break): the consumer has to connect again."""
        with self.lock:
            targets = [c for sockets in self.sockets.values() for c in sockets]
        for connection in targets:
            connection.close()

    def forget_channels(self) -> None:
        """Every channel gone (expired on the Genesys side): connecting to one is refused."""
        with self.lock:
            self.channels.clear()
        self.drop()

    def wait_connected(self, count: int, timeout: float = 20.0) -> None:
        """Until `count` sockets were opened in all and the last one is subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                open_now = sum(len(s) for s in self.sockets.values())
            if self.connections >= count and open_now:
                return
            time.sleep(0.02)
        raise AssertionError(f"{self.connections} connections, not {count}, in {timeout} s")

    # -- users ----------------------------------------------------------------------------
    def add_user(self, user_id: str, username: str) -> None:
        self.users[user_id] = {"id": user_id, "username": username, "state": "active"}
        self.user_details.append({"userId": user_id, "primaryPresence": [], "routingStatus": []})

    def _detail(self, user_id: str) -> dict:
        return next(d for d in self.user_details if d["userId"] == user_id)

    @staticmethod
    def _close_last(records: list[dict], at: datetime) -> None:
        if records and records[-1].get("endTime") is None:
            records[-1]["endTime"] = stamp(at)

    def presence(self, user_id: str, system: str, at: datetime, notify: bool = True) -> int:
        """The user's presence changes at `at` ("Available", "On Queue", ...)."""
        definition = {"id": f"def-{system}", "systemPresence": system}
        self.users[user_id]["presence"] = {
            "presenceDefinition": definition,
            "modifiedDate": stamp(at),
            "source": "PURECLOUD",
        }
        records = self._detail(user_id)["primaryPresence"]
        self._close_last(records, at)
        analytics = system.upper().replace(" ", "_")
        records.append({"startTime": stamp(at), "endTime": None, "systemPresence": analytics})
        if not notify:
            return 0
        body = {
            "source": "PURECLOUD",
            "presenceDefinition": definition,
            "primary": True,
            "message": "",
            "modifiedDate": stamp(at),
        }
        return self.publish(f"v2.users.{user_id}.presence", body)

    def routing(self, user_id: str, status: str, at: datetime, notify: bool = True) -> int:
        """The user's routing status changes at `at` (IDLE, INTERACTING, OFF_QUEUE, ...)."""
        self.users[user_id]["routingStatus"] = {
            "userId": user_id,
            "status": status,
            "startTime": stamp(at),
        }
        records = self._detail(user_id)["routingStatus"]
        self._close_last(records, at)
        records.append({"startTime": stamp(at), "endTime": None, "routingStatus": status})
        if not notify:
            return 0
        body = {"id": user_id, "routingStatus": {"status": status, "startTime": stamp(at)}}
        return self.publish(f"v2.users.{user_id}.routingStatus", body)
