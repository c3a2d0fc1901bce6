"""Genesys Cloud real-time agent status: the Notifications API into the landing store.

`wfm-etl genesys-listen <integration>` runs `Notifications.run`: for a `vendor: genesys_cloud`
integration with a `source.notifications` section it follows every user's presence and
routing status and lands each change as agent-status segments in the project's one landing
store (`etl/ingest/store.py`), through the same door as pushed records
(`etl.ingest.landing.Landing`). The live publisher of `wfm-etl serve` shows them in
`agent_status_live` and `agent_state_now` within seconds. The hourly import of the
integration keeps reading the analytics API (complete, and revised by Genesys up to ~48 h
later), whose records name activities the same way (`activity_of`), so the segments it writes
into `agent_status_segments` are the ones the live views showed, once.

The shapes, from the official SDKs' model pages (MyPureCloud/platform-client-sdk-python,
build/docs): `POST /api/v2/notifications/channels` answers a Channel (`id`, `connectUri`, a
WebSocket URL, and `expires`, 24 h later); `PUT /api/v2/notifications/channels/{id}/
subscriptions` takes a list of ChannelTopic (`{"id": topic}`), at most 1,000 per channel.
Topics used: `v2.users.{id}.presence` (eventBody PresenceEventUserPresence:
`presenceDefinition.systemPresence`, `modifiedDate`) and `v2.users.{id}.routingStatus`
(eventBody UserRoutingStatusUserRoutingStatus: `routingStatus.status`, `startTime`). The socket
sends `{"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}`
every 30 s and `v2.system.socket_closing` before it closes for maintenance.
`GET /api/v2/users?expand=presence,routingStatus` gives each user's current presence and
routing status with the times they began.

Assumed where the pages are silent (docs/sources/genesys_cloud.md says so): the users and
notifications APIs spell system presences as presence definitions do ("On Queue",
"Available"), the analytics API as `ON_QUEUE`, `AVAILABLE`; both are stored in the analytics
spelling (upper case, `_` for spaces).

What it does about the things that go wrong:
- A dropped socket, a socket silent for `heartbeat_timeout_s` (two heartbeats missed) or a
  `socket_closing` notice: it connects again (waiting with a capped, jittered backoff while
  it fails); a channel that is refused or due to expire (`renew_before_s`) is replaced by a
  new channel with the same subscriptions.
- Changes while it was not connected: after every connection it reads every user's current
  presence and routing status, so the open states are right again (the states in between are
  unknown to the live views; the hourly import has them).
- A restart: it reads the segments it left open in the landing store and closes each when the
  agent's current state began.
- The landing store unavailable: records are kept in memory and landed with the next change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from etl.config import Integration
from etl.ingest.landing import Landing, latest_segments
from etl.ingest.store import OPEN_END_US, LandingStore, landing_url
from etl.resources.sources.base import SourceError
from etl.resources.sources.plumbing.tcp_stream import Backoff
from etl.resources.sources.vendors.genesys_cloud import (
    USERS,
    VENDOR,
    GenesysCloudSettings,
    GenesysCloudSource,
    GenesysNotificationSettings,
    _Api,
    activity_of,
)

log = logging.getLogger(__name__)
CHANNELS = "/api/v2/notifications/channels"
HEARTBEAT_TOPIC = "channel.metadata"
CLOSING_TOPIC = "v2.system.socket_closing"
TOPICS_PER_USER = ("presence", "routingStatus")
OPEN_TIMEOUT_S = 10.0


def spelled(system_presence: str) -> str:
    """A system presence in the analytics API's spelling: "On Queue" -> "ON_QUEUE"."""
    return system_presence.strip().upper().replace(" ", "_")


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return pd.Timestamp(text).tz_convert("UTC").to_pydatetime()


def segment(user: str, activity: str, start: datetime, end: datetime | None) -> dict:
    """A canonical agent-status record (`agent_status_segments` without integration_id)."""
    return {
        "user_identifier": user,
        "external_activity": activity,
        "start_utc": start.isoformat(),
        "end_utc": None if end is None else end.isoformat(),
    }


@dataclass
class UserState:
    presence: str | None = None
    presence_at: datetime | None = None
    routing: str | None = None
    routing_at: datetime | None = None
    activity: str | None = None  # the open segment's activity and start
    since: datetime | None = None


class Timelines:
    """Every user's presence, routing status and open segment. Each change returns the
    records it makes: the segment that ended (with its end) and the one that began (open).
    A record with the same user and start replaces an earlier one, so a routing status
    arriving just after the presence of the same instant corrects the open segment."""

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}

    def restore(self, records: Iterable[Mapping]) -> None:
        """The open segments a previous run left in the landing store."""
        for record in records:
            state = self.users.setdefault(record["user_identifier"], UserState())
            start = _instant(record["start_utc"])
            if state.since is None or (start is not None and start > state.since):
                state.activity, state.since = record["external_activity"], start

    def presence(self, user: str, system_presence: str, at: datetime) -> list[dict]:
        state = self.users.setdefault(user, UserState())
        if state.presence_at is not None and at < state.presence_at:
            return []  # older than what is known (a snapshot read after it)
        state.presence, state.presence_at = spelled(system_presence), at
        return self._change(user, state, at)

    def routing(self, user: str, status: str, at: datetime) -> list[dict]:
        state = self.users.setdefault(user, UserState())
        if state.routing_at is not None and at < state.routing_at:
            return []
        state.routing, state.routing_at = status, at
        return self._change(user, state, at)

    def current(
        self,
        user: str,
        presence: tuple[str, datetime] | None,
        routing: tuple[str, datetime] | None,
    ) -> list[dict]:
        """A user's current presence and routing status, read together (a snapshot): the
        activity began when the later of the two that make it began."""
        state = self.users.setdefault(user, UserState())
        times = []
        if presence is not None and (state.presence_at is None or presence[1] >= state.presence_at):
            state.presence, state.presence_at = spelled(presence[0]), presence[1]
        if routing is not None and (state.routing_at is None or routing[1] >= state.routing_at):
            state.routing, state.routing_at = routing
        if state.presence_at is not None:
            times.append(state.presence_at)
        if state.presence == "ON_QUEUE" and state.routing_at is not None:
            times.append(state.routing_at)
        if not times:
            return []
        return self._change(user, state, max(times))

    def _change(self, user: str, state: UserState, at: datetime) -> list[dict]:
        activity = activity_of(state.presence, state.routing)
        if activity is None or activity == state.activity:
            return []
        if state.since is not None and at < state.since:
            at = state.since  # never a segment that ends before it starts
        records = []
        if state.activity is not None and state.since is not None and state.since < at:
            records.append(segment(user, state.activity, state.since, at))
        state.activity, state.since = activity, at
        records.append(segment(user, activity, at, None))
        return records


@dataclass(frozen=True)
class Channel:
    id: str
    connect_uri: str
    expires: datetime | None


@dataclass
class Counts:
    connections: int = 0
    channels: int = 0
    notifications: int = 0
    heartbeats: int = 0
    landed: int = 0
    refused: int = 0


@dataclass
class Notifications:
    """The consumer of one integration: users split over channels of at most
    `max_topics_per_channel` topics, one socket (thread) each, one timeline for all."""

    integration: Integration
    api: _Api
    settings: GenesysNotificationSettings
    identifier_field: str
    landing: Landing
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    counts: Counts = field(default_factory=Counts)

    def __post_init__(self) -> None:
        self.timelines = Timelines()
        self.lock = threading.Lock()
        self.identifiers: dict[str, str] = {}  # user id -> user identifier
        self.unlanded: list[dict] = []

    @property
    def where(self) -> str:
        return f"integration {self.integration.id!r} ({VENDOR} notifications)"

    # -- users ----------------------------------------------------------------------------
    def users(self, ids: Sequence[str] = ()) -> list[dict]:
        """Users with their current presence and routing status (all active users, or
        `ids`)."""
        params: list[tuple[str, object]] = [("expand", "presence,routingStatus")]
        if ids:
            found = []
            for i in range(0, len(ids), 100):
                chunk = [("id", u) for u in ids[i : i + 100]]
                found += self.api.pages(USERS, [*params, *chunk, ("state", "any")], 100)
            return found
        return self.api.pages(USERS, [*params, ("state", "active")], 100)

    def snapshot(self, users: Iterable[dict]) -> None:
        """Apply users' current states (after a connection: what changed meanwhile)."""
        records: list[dict] = []
        with self.lock:
            for user in users:
                ident = self.identifiers.get(str(user.get("id")))
                if ident is None:
                    continue
                presence = user.get("presence") or {}
                system = (presence.get("presenceDefinition") or {}).get("systemPresence")
                since = _instant(presence.get("modifiedDate"))
                routing = user.get("routingStatus") or {}
                started = _instant(routing.get("startTime"))
                records += self.timelines.current(
                    ident,
                    (system, since) if system and since is not None else None,
                    (routing["status"], started)
                    if routing.get("status") and started is not None
                    else None,
                )
            self._land(records, "snapshot")

    # -- notifications --------------------------------------------------------------------
    def handle(self, message: Mapping) -> str | None:
        """One notification; returns "heartbeat" or "closing" for the socket's own."""
        topic = str(message.get("topicName") or "")
        body = message.get("eventBody") or {}
        if topic == HEARTBEAT_TOPIC:
            self.counts.heartbeats += 1
            return "heartbeat"
        if topic == CLOSING_TOPIC:
            return "closing"
        parts = topic.split(".")
        if len(parts) != 4 or parts[:2] != ["v2", "users"] or parts[3] not in TOPICS_PER_USER:
            return None
        self.counts.notifications += 1
        ident = self.identifiers.get(parts[2])
        if ident is None:
            return None
        with self.lock:
            if parts[3] == "presence":
                system = (body.get("presenceDefinition") or {}).get("systemPresence")
                at = _instant(body.get("modifiedDate"))
                if not system or at is None:
                    log.warning(
                        "%s: a presence notification without its presence or time: %s",
                        self.where,
                        topic,
                    )
                    return None
                records = self.timelines.presence(ident, system, at)
            else:
                routing = body.get("routingStatus") or {}
                at = _instant(routing.get("startTime"))
                if not routing.get("status") or at is None:
                    log.warning(
                        "%s: a routing notification without its status or time: %s",
                        self.where,
                        topic,
                    )
                    return None
                records = self.timelines.routing(ident, routing["status"], at)
            self._land(records, topic)
        return None

    def _land(self, records: list[dict], why: str) -> None:
        """Land records (the caller holds the lock, so records land in the order they
        were made); kept for the next try when the landing store is unavailable."""
        records = latest_segments(self.unlanded + records)
        if not records:
            return
        material = json.dumps([why, records], sort_keys=True).encode()
        key = f"genesys:{hashlib.sha256(material).hexdigest()}"
        try:
            result = self.landing.land(self.integration.id, "agent_status", records, key)
        except Exception as exc:  # the store is down: keep them, try with the next change
            log.warning(
                "%s: landing %d record(s) failed, kept for the next try: %s",
                self.where,
                len(records),
                exc,
            )
            self.unlanded = records
            return
        self.unlanded = []
        self.counts.landed += result.accepted
        if result.errors:
            self.counts.refused += len(result.errors)
            log.warning(
                "%s: %d record(s) refused at the door: %s",
                self.where,
                len(result.errors),
                result.errors[:3],
            )

    # -- channels -------------------------------------------------------------------------
    def open_channel(self, topics: Sequence[str]) -> Channel:
        answer = self.api.post(CHANNELS, {})
        channel = Channel(
            str(answer["id"]), str(answer["connectUri"]), _instant(answer.get("expires"))
        )
        self.api.auth.request(
            "PUT",
            f"{self.api.base}{CHANNELS}/{channel.id}/subscriptions",
            json_body=[{"id": topic} for topic in topics],
        )
        self.counts.channels += 1
        log.info(
            "%s: channel %s with %d topics (expires %s)",
            self.where,
            channel.id,
            len(topics),
            channel.expires,
        )
        return channel

    def follow(self, user_ids: Sequence[str], stop: threading.Event) -> None:
        """Follow `user_ids` on one channel until `stop` is set, reconnecting as needed."""
        topics = [f"v2.users.{u}.{kind}" for u in user_ids for kind in TOPICS_PER_USER]
        backoff = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s)
        channel: Channel | None = None
        attempt = 0
        while not stop.is_set():
            try:
                if channel is None or self._expiring(channel):
                    channel = self.open_channel(topics)
                with connect(
                    channel.connect_uri, open_timeout=OPEN_TIMEOUT_S, close_timeout=1
                ) as socket:
                    attempt = 0
                    self.counts.connections += 1
                    log.info("%s: connected to channel %s", self.where, channel.id)
                    self.snapshot(self.users(user_ids))
                    self._read(socket, channel, stop)
                continue
            except InvalidStatus as exc:  # the channel was refused (gone, expired)
                log.warning(
                    "%s: channel %s refused (%s); opening a new one",
                    self.where,
                    channel.id if channel else "-",
                    exc,
                )
                channel = None
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, SourceError) as exc:
                log.warning("%s: %s: %s", self.where, type(exc).__name__, exc)
            attempt += 1
            stop.wait(backoff.delay(attempt))

    def _expiring(self, channel: Channel) -> bool:
        if channel.expires is None:
            return False
        return (channel.expires - self.now()).total_seconds() <= self.settings.renew_before_s

    def _read(self, socket, channel: Channel, stop: threading.Event) -> None:
        """Read until stopped, told the socket closes, silent too long, or the channel is
        due to be renewed (then the caller opens a new one)."""
        timeout = self.settings.heartbeat_timeout_s
        last = time.monotonic()
        while not stop.is_set():
            if self._expiring(channel):
                log.info("%s: channel %s expires soon; renewing it", self.where, channel.id)
                return
            try:
                raw = socket.recv(timeout=min(1.0, timeout))
            except TimeoutError:
                if time.monotonic() - last >= timeout:
                    log.warning(
                        "%s: nothing on channel %s for %.0f s; reconnecting",
                        self.where,
                        channel.id,
                        timeout,
                    )
                    return
                continue
            last = time.monotonic()
            try:
                message = json.loads(raw)
            except ValueError:
                log.warning("%s: a message that is not JSON: %r", self.where, raw[:80])
                continue
            if isinstance(message, dict) and self.handle(message) == "closing":
                log.info(
                    "%s: channel %s closes for maintenance; reconnecting", self.where, channel.id
                )
                return

    # -- everything -----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Follow every configured (or active) user until `stop` is set."""
        users = self.users(self.settings.user_ids)
        field_name = self.identifier_field
        for user in users:
            value = user.get(field_name)
            if user.get("id") and isinstance(value, str) and value:
                self.identifiers[str(user["id"])] = value
        missing = len(users) - len(self.identifiers)
        if missing:
            log.warning(
                "%s: %d user(s) without a %s are not followed", self.where, missing, field_name
            )
        self.restore()
        ids = sorted(self.identifiers)
        per_channel = self.settings.max_topics_per_channel // len(TOPICS_PER_USER)
        groups = [ids[i : i + per_channel] for i in range(0, len(ids), per_channel)]
        threads = [
            threading.Thread(
                target=self.follow, args=(group, stop), daemon=True, name=f"genesys-channel-{n}"
            )
            for n, group in enumerate(groups)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def restore(self) -> None:
        """Open segments landed by an earlier run: closed when the current state began."""
        rows = self.landing.store.segments_overlapping(
            self.integration.id, OPEN_END_US - 1, OPEN_END_US
        )
        self.timelines.restore(json.loads(record) for _, _, _, record, _ in rows)


def notifications_of(
    integration: Integration, env: Mapping[str, str] | None = None
) -> Notifications:
    """The consumer of a `vendor: genesys_cloud` integration with `source.notifications`."""
    env = os.environ if env is None else env
    settings = GenesysCloudSettings.model_validate(integration.source)
    if settings.notifications is None:
        raise SourceError(
            f"integration {integration.id!r}: no source.notifications section (real-time agent "
            "status from the Genesys Cloud Notifications API)"
        )
    if "agent_status" not in integration.data:
        raise SourceError(f"integration {integration.id!r} carries no agent_status data")
    secret = env.get(settings.client_secret_env)
    if not secret:
        raise SourceError(
            f"integration {integration.id!r}: environment variable "
            f"{settings.client_secret_env} (the OAuth client secret) is not set"
        )
    source = GenesysCloudSource(
        integration_id=integration.id,
        timezone=integration.timezone,
        interval_minutes=integration.interval_minutes,
        settings=settings,
        client_secret=secret,
    )
    landing = Landing(LandingStore(landing_url(env)), {integration.id: integration})
    return Notifications(
        integration, source._api(), settings.notifications, settings.user_identifier, landing
    )
