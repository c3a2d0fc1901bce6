"""`vendor: mitel`: Mitel MiVoice Business, agent status from the ACD real-time event stream
and contact data from MiContact Center's interval exports.

Agent status. The MiVoice Business ACD sends real-time events over TCP (MiContact Center KB
51046, "ACD record Real-time Format Specification, with Function Codes"): each record starts
with STX (0x02), then REC NUM (2 characters, '00'..'99', cycling), FUNCTION (1 character: A
agent login, B agent logout, C/D set/remove DND, E/F set/remove make busy, G answer ACD call,
H answer personal call, I originate call, J agent idle, K group report, L/M work timer
start/expire, N call hold, O hold retrieve, P hold abandon, Q path report, R refresh reports,
S answered remote ACD call, T/U agent ringing/end ringing), TIME (6 characters, HHMMSS in
24-hour format, the ACD's local time), DIRECTORY NUMBER (7 characters), AGENT ID (7
characters, blank when no agent is logged in) and BUTTON NUMBER (which carries the make-busy
reason code when reason codes are used). Where the specification is silent, this module
assumes (and docs/sources/mitel.md says so): fields are left-justified and blank-padded; a
record ends at CR, LF or ETX, or where the next STX begins; the button number is the first
word after the agent id.

`wfm-etl mitel-listen <integration>` runs `MitelListener`: a long-running reader of that stream
(`plumbing/tcp_stream.py`) that frames records on STX across reads (`plumbing/framing.py`),
skips records it has seen (after a reconnect the ACD may send them again: the identity of a
record is its sequence number with its leading fields), notices missed sequence numbers,
turns each agent's events into segments (`AgentStates`), and lands the segments in the
project's one landing store (`etl/ingest/store.py`, through `etl.ingest.landing.Landing`, the
door pushed records take) before it takes the next read, so the live views of `wfm-etl serve`
show them within seconds. It also keeps a log of when it was listening. The integration's
`agent_status` import reads the landed segments per window (as `vendor: api` does), and fails
the hours in which the listener was not listening at all (nothing can be known there).

Contacts. MiContact Center's queue reports ("Queue Performance by Period"), exported as CSV
in the ACD's local time zone, are read with the CSV source under this preset's column names
and formats (`MICC_COLUMNS`, `MICC_FORMAT`); every one of them can be overridden.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from etl import clock
from etl.config import Integration
from etl.ingest.landing import Landing, latest_segments
from etl.ingest.store import OPEN_END_US, LandingStore, landing_url
from etl.partitions import HOUR, hours
from etl.resources.files import append_durably, replace_atomically, try_lock
from etl.resources.sources.base import (
    Extract,
    SourceError,
    SourceSettings,
    WindowFailure,
)
from etl.resources.sources.plumbing.framing import StxFramer
from etl.resources.sources.plumbing.locations import state_dir
from etl.resources.sources.plumbing.tcp_stream import Backoff, TcpStream
from etl.resources.sources.universal.api import ApiSettings, ApiSource, LandedSource
from etl.resources.sources.universal.csv_files import CsvSettings, CsvSource

log = logging.getLogger(__name__)

VENDOR = "Mitel MiVoice Business"
DEFAULT_PORT = 15373  # the ACD real-time port MiVoice Business controllers listen on
SEQUENCE_SPAN = 100  # REC NUM runs '00'..'99', then starts over
RECENT_RECORDS = 2 * SEQUENCE_SPAN  # identities remembered to skip records sent again
LEADING_FIELDS = 23  # REC NUM 2 + FUNCTION 1 + TIME 6 + DIRECTORY NUMBER 7 + AGENT ID 7
IDLE_FLUSH_S = 0.5  # an unterminated record is complete when the stream pauses this long

# What each function code means for the agent's state (activity names as imported).
ACTIVITIES = {
    "A": "Idle",  # agent login: available
    "C": "DND",
    "D": "Idle",
    "E": "Make Busy",
    "F": "Idle",
    "G": "ACD Call",
    "H": "Personal Call",
    "I": "Outgoing Call",
    "J": "Idle",
    "L": "Work Timer",
    "M": "Idle",
    "N": "Hold",
    "P": "Idle",  # the held party hung up
    "S": "ACD Call",  # answered remote ACD call
}
LOGOUT = "B"
HOLD = "N"
HOLD_RETRIEVE = "O"
MAKE_BUSY = "E"
# Group and path reports and refresh records have a layout of their own (and no agent).
REPORTS = frozenset("KQR")
# Those, and ringing: no change of the agent's state.
NOT_AGENT_STATES = REPORTS | frozenset("TU")
KNOWN_CODES = frozenset(ACTIVITIES) | {LOGOUT, HOLD_RETRIEVE} | NOT_AGENT_STATES

# MiContact Center interval exports (Queue Performance by Period, one row per queue and
# period), as the CSV source reads them; every entry can be overridden in `source.contacts`.
MICC_COLUMNS = {
    "Queue": "external_queue_id",
    "Date": "interval_date",
    "Period": "interval_time",
    "ACD calls offered": "offered",
    "ACD calls handled": "answered",
    "ACD calls abandoned": "abandoned",
    "ACD handling time": "handle_time",
}
MICC_FORMAT = {
    "time": "local",  # the ACD's local time zone: the integration's timezone
    "date_format": "%Y-%m-%d",
    "time_format": "%H:%M",
    "duration_unit": "hms",
    "ambiguous_times": "order",  # fall back: the first of two equal periods is summer time
}


# -- the records ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AcdEvent:
    """One record of the real-time stream."""

    sequence: int
    code: str
    clock: time | None  # local time of day; None for records without one (refresh)
    directory_number: str
    agent_id: str
    detail: str  # the button number, or the make-busy reason code
    identity: str  # sequence number and leading fields as received: the same record, resent


def parse_record(record: bytes) -> AcdEvent:
    """One framed record (without its STX); ValueError says why it cannot be read."""
    try:
        text = record.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not ASCII text (byte {exc.start})") from None
    if len(text) < 3 or not text[:2].isdigit():
        raise ValueError("no REC NUM (two digits) at the start")
    code = text[2]
    if code not in KNOWN_CODES:
        raise ValueError(f"unknown function code {code!r}")
    sequence = int(text[:2])
    if code in REPORTS:
        return AcdEvent(sequence, code, None, "", "", "", text[:LEADING_FIELDS])
    if len(text) < LEADING_FIELDS:
        raise ValueError(
            f"{len(text)} characters; an agent event has at least {LEADING_FIELDS} (REC NUM, "
            "FUNCTION, TIME, DIRECTORY NUMBER, AGENT ID)"
        )
    hhmmss = text[3:9]
    try:
        clock_time = time(int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:6]))
    except ValueError:
        raise ValueError(f"TIME {hhmmss!r} is not HHMMSS") from None
    detail = text[LEADING_FIELDS:].split()
    return AcdEvent(
        sequence=sequence,
        code=code,
        clock=clock_time,
        directory_number=text[9:16].strip(),
        agent_id=text[16:23].strip(),
        detail=detail[0] if detail else "",
        identity=text[:LEADING_FIELDS],
    )


def event_instant(clock_time: time, received: datetime, timezone: ZoneInfo) -> datetime:
    """The UTC instant of a local time of day received at `received`: of the candidates on
    the days around it (both, in the hour that repeats when clocks go back), the nearest."""
    local_day = received.astimezone(timezone).date()
    candidates = [
        datetime.combine(local_day + timedelta(days=shift), clock_time, timezone)
        .replace(fold=fold)
        .astimezone(UTC)
        for shift in (-1, 0, 1)
        for fold in (0, 1)
    ]
    return min(candidates, key=lambda moment: abs(moment - received))


# -- segments -------------------------------------------------------------------------------
def segment_record(agent: str, activity: str, start: datetime, end: datetime | None) -> dict:
    """A landed agent-status record, in the canonical shape (`agent_status_segments`)."""
    return {
        "user_identifier": agent,
        "external_activity": activity,
        "start_utc": start.isoformat(),
        "end_utc": end.isoformat() if end is not None else None,
    }


@dataclass
class OpenState:
    activity: str
    start: datetime
    resume: str | None = None  # the call a hold interrupted


class AgentStates:
    """Each agent's current state, from its events. `apply` returns the records that change:
    the state that ended (with its end) and the one that began (open, without an end). A
    later record with the same agent and start replaces an earlier one; one whose end equals
    its start withdraws the segment (a state that lasted no time)."""

    def __init__(self, states: dict[str, OpenState] | None = None) -> None:
        self.states: dict[str, OpenState] = states or {}

    def apply(self, event: AcdEvent, at: datetime) -> list[dict]:
        agent = event.agent_id
        if not agent or event.code in NOT_AGENT_STATES:
            return []
        current = self.states.get(agent)
        if current is not None and at < current.start:
            at = current.start  # a clock that went back: never a negative segment
        if event.code == LOGOUT:
            if current is None:
                return []
            del self.states[agent]
            return [segment_record(agent, current.activity, current.start, at)]
        resume = None
        if event.code == HOLD_RETRIEVE:
            if current is None or current.activity != ACTIVITIES[HOLD]:
                return []  # the hold was not seen: the call goes on
            activity = current.resume or ACTIVITIES["G"]
        else:
            activity = ACTIVITIES[event.code]
            if event.code == MAKE_BUSY and event.detail.strip("0"):
                activity = f"{activity} {event.detail}"  # the reason code
            if event.code == HOLD and current is not None:
                resume = current.activity
        if current is not None and current.activity == activity:
            return []  # no change (or the same event again)
        records = []
        if current is not None and current.start < at:
            records.append(segment_record(agent, current.activity, current.start, at))
        # At the same second, the new state replaces the one that lasted no time.
        self.states[agent] = OpenState(activity, at, resume)
        records.append(segment_record(agent, activity, at, None))
        return records

    def close_all(self, at: datetime) -> list[dict]:
        """End every open state at `at` (what happened after it is unknown); one that began
        at `at` is withdrawn."""
        records = [
            segment_record(agent, state.activity, state.start, max(at, state.start))
            for agent, state in sorted(self.states.items())
        ]
        self.states.clear()
        return records

    @classmethod
    def from_landed(cls, records: Iterable[Mapping[str, Any]]) -> AgentStates:
        """The states still open in landed records (the newest open one per agent)."""
        newest: dict[str, OpenState] = {}
        for record in records:
            if record.get("end_utc") is not None:
                continue
            start = datetime.fromisoformat(record["start_utc"])
            agent = record["user_identifier"]
            if agent not in newest or start >= newest[agent].start:
                newest[agent] = OpenState(record["external_activity"], start)
        return cls(newest)


# -- settings -------------------------------------------------------------------------------
class MiContactCenterExports(CsvSettings):
    """`source.contacts`: MiContact Center interval exports, read by the CSV source. The
    preset's column names and formats apply unless given here."""

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        given = dict(value)
        contacts = dict(given.get("contacts") or {})
        own = dict(contacts.get("columns") or {})
        # A column given here replaces the preset's column for the same field.
        columns = {
            **{k: v for k, v in MICC_COLUMNS.items() if k not in own and v not in own.values()},
            **own,
        }
        given["contacts"] = {"channel": "calls", **contacts, "columns": columns}
        given["format"] = {**MICC_FORMAT, **dict(given.get("format") or {})}
        return given


class MitelSettings(SourceSettings):
    """`source:` settings of `vendor: mitel`."""

    host: str | None = Field(
        default=None, description="the MiVoice Business controller (for mitel-listen)"
    )
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="ACD real-time port")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    idle_timeout_s: float = Field(
        default=120.0, gt=0, description="reconnect when the stream sends nothing this long"
    )
    reconnect_initial_s: float = Field(default=1.0, ge=0, description="first reconnect wait")
    reconnect_max_s: float = Field(default=60.0, ge=0, description="longest reconnect wait")
    resume_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="a disconnection longer than this ends every open state when it began",
    )
    heartbeat_s: float = Field(
        default=60.0, gt=0, description="how often the listener records that it is listening"
    )
    state_dir: str | None = Field(
        default=None,
        description="the listener's state and listening log; default "
        "<warehouse>/state (segments land in the landing store)",
    )
    freshness_warn_seconds: int = Field(
        default=300,
        ge=1,
        description="The freshness check warns when the listener landed nothing this long.",
    )
    contacts: MiContactCenterExports | None = None


# -- where things are kept ------------------------------------------------------------------
@dataclass(frozen=True)
class MitelPaths:
    """The listener's state, its listening log and its lock, for one integration."""

    root: Path
    integration_id: str

    @classmethod
    def of(cls, settings: MitelSettings, integration_id: str) -> MitelPaths:
        return cls(state_dir(settings.state_dir), integration_id)

    @property
    def state(self) -> Path:
        return self.root / "mitel" / f"{self.integration_id}.state.json"

    @property
    def listening(self) -> Path:
        return self.root / "mitel" / f"{self.integration_id}.listening.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "mitel" / f"{self.integration_id}.lock"


def listening_periods(path: Path) -> list[tuple[datetime, datetime]]:
    """When the listener was connected and reading: merged [from, to] periods, oldest first."""
    if not path.exists():
        return []
    latest: dict[str, str] = {}
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # torn last line
            entry = json.loads(raw)
            latest[entry["from"]] = max(entry["to"], latest.get(entry["from"], entry["to"]))
    spans = sorted(
        (datetime.fromisoformat(start), datetime.fromisoformat(end))
        for start, end in latest.items()
    )
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# -- the listener ---------------------------------------------------------------------------
class ListenerBusyError(SourceError):
    """Another listener holds the integration's lock."""


@dataclass
class ListenerCounts:
    records: int = 0
    duplicates: int = 0
    unreadable: int = 0
    missed: int = 0
    cut: int = 0
    landed: int = 0


@dataclass
class MitelListener:
    """Turns the bytes of the real-time stream into landed segments (a `StreamHandler`)."""

    integration_id: str
    settings: MitelSettings
    timezone: ZoneInfo
    store: Landing
    paths: MitelPaths
    states: AgentStates = field(default_factory=AgentStates)  # as landed before a restart
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    counts: ListenerCounts = field(default_factory=ListenerCounts)

    def __post_init__(self) -> None:
        self.framer = StxFramer(min_record_bytes=LEADING_FIELDS)
        saved = _read_json(self.paths.state)
        self.last_sequence: int | None = saved.get("last_sequence")
        self.recent: deque[str] = deque(saved.get("recent", []), maxlen=RECENT_RECORDS)
        self.alive_at: datetime | None = _instant(saved.get("alive_at"))
        self.last_event_at: datetime | None = _instant(saved.get("last_event_at"))
        self.listening_since: datetime | None = None
        self.last_heartbeat: datetime | None = None
        self.last_data: datetime | None = None

    @classmethod
    def restore(
        cls,
        integration: Integration,
        now: Callable[[], datetime] | None = None,
        url: str | None = None,
    ) -> MitelListener:
        """The integration's listener as it was when it last ran: sequence numbers and records
        seen from its state file, agents' open states from the segments it left open in the
        landing store (`url`, default `landing_url()`)."""
        settings = MitelSettings.model_validate(integration.source)
        paths = MitelPaths.of(settings, integration.id)
        clock_now = now or (lambda: datetime.now(UTC))
        landing = Landing(
            LandingStore(url or landing_url()), {integration.id: integration}, now=clock_now
        )
        rows = landing.store.segments_overlapping(integration.id, OPEN_END_US - 1, OPEN_END_US)
        return cls(
            integration.id,
            settings,
            ZoneInfo(integration.timezone),
            landing,
            paths,
            AgentStates.from_landed(json.loads(record) for _, _, _, record, _ in rows),
            now=clock_now,
        )

    @property
    def where(self) -> str:
        peer = f"{self.settings.host}:{self.settings.port}"
        return f"integration {self.integration_id!r} ({VENDOR} {peer})"

    # -- StreamHandler ------------------------------------------------------------------------
    def connected(self, peer: str) -> None:
        now = self.now()
        log.info("%s: connected to %s", self.where, peer)
        if self.alive_at is not None and (now - self.alive_at).total_seconds() > (
            self.settings.resume_grace_s
        ):
            # Out of touch too long: what agents did meanwhile is unknown.
            self._land(self.states.close_all(self.alive_at), "closed after a gap")
        self.framer = StxFramer(min_record_bytes=LEADING_FIELDS)
        self.listening_since = now
        self._heartbeat(now)

    def received(self, data: bytes) -> None:
        self.last_data = self.now()
        self._process(self.framer.feed(data), self.last_data)

    def tick(self) -> None:
        now = self.now()
        since_data = now - (self.last_data or now)
        if self.framer.pending and since_data.total_seconds() >= IDLE_FLUSH_S:
            self._process(self.framer.flush(), now)
        if self.listening_since is None:
            return
        if (
            self.last_heartbeat is None
            or (now - self.last_heartbeat).total_seconds() >= self.settings.heartbeat_s
        ):
            self._heartbeat(now)

    def disconnected(self, reason: str) -> None:
        now = self.now()
        cut = self.framer.reset()
        if cut:
            self.counts.cut += 1
            log.warning(
                "%s: connection ended inside a record (%d bytes dropped; the ACD may send it "
                "again)",
                self.where,
                len(cut),
            )
        self._heartbeat(now)
        self.listening_since = None
        log.warning("%s: disconnected: %s", self.where, reason)

    # -- records ------------------------------------------------------------------------------
    def _process(self, records: list[bytes], received: datetime) -> None:
        updates: list[dict] = []
        for raw in records:
            self.counts.records += 1
            try:
                event = parse_record(raw)
            except ValueError as exc:
                self.counts.unreadable += 1
                log.warning("%s: unreadable record %r: %s", self.where, raw[:80], exc)
                continue
            if event.identity in self.recent:
                self.counts.duplicates += 1  # sent again after a reconnect
                continue
            missed = self._missed(event.sequence)
            self.recent.append(event.identity)
            self.last_sequence = event.sequence
            at = event_instant(event.clock, received, self.timezone) if event.clock else None
            if missed:
                self.counts.missed += missed
                # Known until the last record before the gap: by its time or its receipt.
                known = [t for t in (self.alive_at, self.last_event_at) if t is not None]
                gap_start = max(known) if known else received
                log.warning(
                    "%s: %d record(s) missed before REC NUM %02d; states end at %s",
                    self.where,
                    missed,
                    event.sequence,
                    gap_start.isoformat(),
                )
                updates += self.states.close_all(gap_start)
                self._break_listening(gap_start, at or received)
            if at is None:
                continue
            updates += self.states.apply(event, at)
            self.last_event_at = max(at, self.last_event_at or at)
        self._land(updates, "events")
        self._save_state(received)

    def _missed(self, sequence: int) -> int:
        if self.last_sequence is None:
            return 0
        return (sequence - self.last_sequence - 1) % SEQUENCE_SPAN

    def _land(self, records: list[dict], why: str) -> None:
        """Land segments (durable when it returns); a segment that ends where it starts
        lasted no time and is withdrawn."""
        records = latest_segments(records)
        withdrawn = [r for r in records if _lasted_no_time(r)]
        records = [r for r in records if not _lasted_no_time(r)]
        if records:
            material = json.dumps([why, records], sort_keys=True).encode()
            key = f"mitel:{hashlib.sha256(material).hexdigest()}"
            result = self.store.land(self.integration_id, "agent_status", records, key)
            if not result.replayed:
                self.counts.landed += result.accepted
            if result.errors:
                log.warning(
                    "%s: %d segment(s) refused at the door (they reach rejected_rows): %s",
                    self.where,
                    len(result.errors),
                    result.errors[:3],
                )
        if withdrawn:
            self.store.withdraw(self.integration_id, withdrawn)

    # -- what the listener knows about itself -------------------------------------------------
    def _heartbeat(self, now: datetime) -> None:
        """Record that the listener was listening until `now` (the listening log the import
        reads), and save its state."""
        if self.listening_since is not None:
            self._log_listening(self.listening_since, now)
            self.last_heartbeat = now
        self._save_state(now)

    def _save_state(self, now: datetime) -> None:
        """What a restarted listener needs: sequence numbers and records seen, and when it
        was last in touch with the ACD."""
        self.alive_at = now
        state = {
            "last_sequence": self.last_sequence,
            "recent": list(self.recent),
            "alive_at": now.isoformat(),
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
        }
        replace_atomically(self.paths.state, lambda tmp: tmp.write_text(json.dumps(state)))

    def _break_listening(self, until: datetime, resumed: datetime) -> None:
        """Missed records: the listening period ends where they began and starts again."""
        if self.listening_since is not None and self.listening_since < until:
            self._log_listening(self.listening_since, until)
        self.listening_since = resumed

    def _log_listening(self, start: datetime, end: datetime) -> None:
        line = json.dumps({"from": start.isoformat(), "to": end.isoformat()}) + "\n"
        self.paths.listening.parent.mkdir(parents=True, exist_ok=True)
        append_durably(self.paths.listening, line.encode())


def _lasted_no_time(record: Mapping[str, Any]) -> bool:
    end = record["end_utc"]
    return end is not None and _instant(end) <= _instant(record["start_utc"])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def listen(integration: Integration, stop: threading.Event, now=None) -> MitelListener:
    """Run the listener of a `vendor: mitel` integration until `stop` is set."""
    settings = MitelSettings.model_validate(integration.source)
    if not settings.host:
        raise SourceError(
            f"integration {integration.id!r}: source.host is not set: the MiVoice Business "
            "controller whose ACD real-time events to read"
        )
    paths = MitelPaths.of(settings, integration.id)
    lock = try_lock(paths.lock)
    if lock is None:
        raise ListenerBusyError(
            f"integration {integration.id!r}: another mitel-listen holds {paths.lock}; run one "
            "listener per integration"
        )
    with lock:
        listener = MitelListener.restore(integration, now)
        stream = TcpStream(
            settings.host,
            settings.port,
            listener,
            stop,
            where=listener.where,
            connect_timeout_s=settings.connect_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            backoff=Backoff(settings.reconnect_initial_s, settings.reconnect_max_s),
        )
        try:
            stream.run()
        finally:
            listener.store.store.dispose()
    return listener


# -- the source -----------------------------------------------------------------------------
class MitelSource(LandedSource):
    """`vendor: mitel`: landed real-time segments, and MiContact Center exports."""

    deliveries: ClassVar[tuple[str, ...]] = ("on_premise",)
    timing: ClassVar[tuple[str, ...]] = ("batch", "real-time")

    @classmethod
    def real_time_data(cls, integration: Integration) -> tuple[str, ...]:
        """Agent status, from the listener; contacts come in CSV exports."""
        return tuple(kind for kind in integration.data if kind == "agent_status")

    settings_model = MitelSettings
    settings: MitelSettings

    def contacts(self, start: datetime, end: datetime) -> Extract:
        exports = self.settings.contacts
        if exports is None:
            raise SourceError(
                f"integration {self.integration_id!r}: no source.contacts section (the folder "
                "of MiContact Center interval exports)"
            )
        csv = CsvSource(
            integration_id=self.integration_id,
            timezone=self.timezone,
            interval_minutes=self.interval_minutes,
            settings=exports,
        )
        return csv.contacts(start, end)

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """The landed segments overlapping the window, read as `vendor: api` reads pushed
        ones (refused records and pruned hours included), and the hours without a listener."""
        landed = ApiSource(
            integration_id=self.integration_id,
            timezone=self.timezone,
            interval_minutes=self.interval_minutes,
            settings=ApiSettings(),
            landing_url=self.landing_url,
        ).agent_status(start, end)
        failed, note = self._coverage(MitelPaths.of(self.settings, self.integration_id), start, end)
        description = f"{VENDOR} listener's segments: {landed.description}{note}"
        return Extract(landed.frame, landed.rejected, description, [*landed.failed, *failed])

    def _coverage(
        self, paths: MitelPaths, start: datetime, end: datetime
    ) -> tuple[list[WindowFailure], str]:
        """Hours of the window's past in which the listener was not listening at all fail
        (nothing can be known there); partly covered hours load, and the description says how
        much was not covered."""
        periods = listening_periods(paths.listening)
        past_end = min(end, clock.now())
        if not periods or periods[0][0] >= past_end:
            first = f" (first at {periods[0][0]:%Y-%m-%d %H:%M} UTC)" if periods else ""
            return [], f"; the listener was not listening before the window's end{first}"
        grace = timedelta(seconds=self.settings.heartbeat_s)
        covered = [(a, b + grace) for a, b in periods]
        failed, uncovered = [], timedelta()
        for hour in hours(start, past_end):
            lo, hi = max(hour, periods[0][0]), min(hour + HOUR, past_end)
            if lo >= hi:
                continue
            missing = (hi - lo) - sum(
                (min(b, hi) - max(a, lo) for a, b in covered if a < hi and b > lo), timedelta()
            )
            if missing >= hi - lo:
                failed.append(
                    WindowFailure(
                        hour,
                        hour + HOUR,
                        f"integration {self.integration_id!r}: the {VENDOR} listener was not "
                        f"listening {lo:%Y-%m-%d %H:%M}..{hi:%H:%M} UTC (wfm-etl mitel-listen "
                        f"{self.integration_id}); agent status of that time is unknown",
                    )
                )
            elif missing > timedelta():
                uncovered += missing
        note = ""
        if uncovered:
            note = f"; listener not listening for {uncovered.total_seconds() / 60:.1f} min of it"
        if failed:
            note += f"; {len(failed)} hour(s) without the listener"
        return failed, note
