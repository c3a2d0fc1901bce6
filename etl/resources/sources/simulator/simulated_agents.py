"""Simulated agent days for the simulator source: who logged in when and did what.

A contact centre staffs to its load, so the agents follow the simulator's own contact volumes:
the offered load per half hour (Erlangs: contacts x handle time, from the same intraday and
weekday curves as `SimulatorSource.contacts`) sets how many agents are needed; shifts
(8.5 hours with breaks and lunch, shorter late in the day) are laid greedily to cover that
need; a pool of named agents, sized so everyone gets days off, is rostered onto the shifts.
Inside a shift an agent cycles through Available -> On Call (On Chat, On Email ...) -> After
Call Work, with waits drawn from the occupancy of that half hour, two breaks, a lunch,
sometimes a meeting or a short Not Ready.

Everything is a pure function of (seed, integration, agent, local day): each day's roster
and each agent's day come from their own random stream, so any window can be generated
alone, in any order, with the same result. Days are local calendar days measured in elapsed
time, so a 23- or 25-hour DST day is simply shorter or longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache, lru_cache

import numpy as np
import pandas as pd

SLOT_S = 30 * 60
FULL_SHIFT_SLOTS = 17  # 8.5 hours including a 30-minute lunch
MIN_SHIFT_SLOTS = 8  # 4 hours: nobody is called in for less
TARGET_OCCUPANCY = 0.8
SHRINKAGE = 0.12
MAX_HANDLE_FACTOR = 4.0
# Shifts starting in the first or ending in the last two hours of a day: a late shift's last
# contact and logout (at most 4 x 20 minutes + 5) end well within two hours.
EDGE_SLOTS = 4

FIRST_NAMES = (
    "Anna", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Kemal", "Lena", "Maya", "Noah", "Olga", "Paul", "Priya", "Rafael", "Sofia", "Tom",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Müller", "Schmidt", "Garcia", "Nowak", "Rossi", "Kumar", "Novak", "Jensen",
    "Larsen", "Dubois", "Silva", "Yilmaz", "Kowalski", "Brown", "Fischer", "Weber", "Costa",
    "Sato", "Olsen",
)  # fmt: skip
HANDLE_ACTIVITY = {
    "calls": "On Call",
    "chats": "On Chat",
    "emails": "On Email",
    "tickets": "On Ticket",
    "social": "On Social",
    "documents": "On Document",
}
AVAILABLE = "Available"
AFTER_CALL_WORK = "After Call Work"
BREAK = "Break"
LUNCH = "Lunch"
MEETING = "Meeting"
NOT_READY = "Not Ready"
IDENTIFIER_KINDS = ("user_name", "email", "agent_id")


@dataclass(frozen=True)
class Centre:
    """What the agent days of one simulated integration depend on (hashable, for caching)."""

    integration_id: str
    seed: int
    key: int  # the simulator's per-integration hash key
    timezone: str
    # Per channel: (channel, share of the contacts, mean handle time in seconds).
    channels: tuple[tuple[str, float, float], ...]
    # Handled load in Erlangs per weekday (Monday first) and local half hour (48 values).
    load: tuple[tuple[float, ...], ...]
    agents: int | None = None
    identifiers: str = "user_name"

    def erlangs(self, local_hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
        """Handled load (agents busy on average) at these local hours and weekdays."""
        table = np.asarray(self.load)
        half_hour = np.clip((np.asarray(local_hour) * 2).astype(int), 0, 47)
        return table[np.asarray(weekday), half_hour]

    @property
    def mean_handle_s(self) -> float:
        total = sum(rate for _, rate, _ in self.channels)
        return sum(rate * aht for _, rate, aht in self.channels) / total

    @property
    def channel_shares(self) -> np.ndarray:
        rates = np.array([rate for _, rate, _ in self.channels])
        return rates / rates.sum()


def _rng(centre: Centre, day: date, stream: int) -> np.random.Generator:
    """The random stream of one (integration, seed, day, stream): stream 0 is the roster,
    stream 1 + a is agent a's day."""
    return np.random.default_rng([centre.seed, centre.key, day.toordinal(), stream])


def _cover(need: np.ndarray) -> list[tuple[int, int]]:
    """Shifts (first slot, slots) laid greedily from the start of the day so that every slot
    has at least `need` agents: 8.5-hour shifts, shorter ones (at least 4 hours) late."""
    slots = len(need)
    coverage = np.zeros(slots, dtype=int)
    shifts = []
    for i in range(slots):
        while coverage[i] < need[i]:
            first = max(0, min(i, slots - MIN_SHIFT_SLOTS))
            length = min(FULL_SHIFT_SLOTS, slots - first)
            shifts.append((first, length))
            coverage[first : first + length] += 1
    return shifts


def _need(erlangs: np.ndarray) -> np.ndarray:
    return np.maximum(np.ceil(erlangs / TARGET_OCCUPANCY), 1).astype(int)


@cache
def pool_size(centre: Centre) -> int:
    """Agents employed: enough for the busiest weekday's shifts with two days off a week."""
    if centre.agents is not None:
        return centre.agents
    local_hour = (np.arange(48) + 0.5) / 2
    busiest = max(
        len(_cover(_need(centre.erlangs(local_hour, np.full(48, weekday))))) for weekday in range(7)
    )
    return math.ceil(busiest * 7 / 5) + 1


def user_identifier(centre: Centre, agent: int) -> str:
    """The agent's identifier as the vendor kind delivers it: a user name such as
    'Anna.Smith', an email address, or a numeric agent id."""
    if centre.identifiers == "agent_id":
        return str(10001 + agent)
    names = len(FIRST_NAMES) * len(LAST_NAMES)
    v = (agent + centre.key) % names  # each integration starts elsewhere in the list
    first = FIRST_NAMES[v % len(FIRST_NAMES)]
    last = LAST_NAMES[(v // len(FIRST_NAMES) + v) % len(LAST_NAMES)]
    name = f"{first}.{last}" + (str(agent // names + 1) if agent >= names else "")
    if centre.identifiers == "email":
        domain = centre.integration_id.replace("_", "-")
        return f"{name.lower()}@{domain}.example.com"
    return name


def _roster(
    centre: Centre, day: date, shifts: list[tuple[int, int]], slots: int
) -> tuple[tuple[int, int, int], ...]:
    """(agent, first slot, slots) per shift: a random draw from the pool each day.

    A late shift can run past midnight (a last contact, a late logout) into the next day's
    early shifts, so one agent must never have both. Early and late shifts of a day go to the
    agents whose number has the day's parity; the next day that is the other half of the
    pool. Shifts that find nobody free stay unstaffed, as in a short-handed centre.
    """
    agents = _rng(centre, day, 0).permutation(pool_size(centre))
    parity = day.toordinal() % 2
    edge_agents = [int(a) for a in agents if (a + parity) % 2 == 0]
    other_agents = [int(a) for a in agents if (a + parity) % 2 == 1]
    edge = [s for s in shifts if s[0] < EDGE_SLOTS or s[0] + s[1] > slots - EDGE_SLOTS]
    middle = [s for s in shifts if s not in edge]
    roster = list(zip(edge_agents, edge, strict=False))
    spare = other_agents + edge_agents[len(edge) :]
    roster += list(zip(spare, middle, strict=False))
    return tuple(sorted((agent, first, length) for agent, (first, length) in roster))


@dataclass(frozen=True)
class DayPlan:
    """One local day of a centre: its UTC start, slots, occupancy per slot and the roster."""

    start: pd.Timestamp
    occupancy: np.ndarray
    roster: tuple[tuple[int, int, int], ...]  # (agent, first slot, slots)


@lru_cache(maxsize=64)
def day_plan(centre: Centre, day: date) -> DayPlan:
    tz = centre.timezone
    start = pd.Timestamp(day).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    end = pd.Timestamp(day + timedelta(days=1)).tz_localize(
        tz, ambiguous=True, nonexistent="shift_forward"
    )
    slots = int((end - start).total_seconds() // SLOT_S)
    mids = start + pd.to_timedelta((np.arange(slots) + 0.5) * SLOT_S, unit="s")
    local_hour = mids.hour + mids.minute / 60
    erlangs = centre.erlangs(np.asarray(local_hour), np.asarray(mids.dayofweek))
    roster = _roster(centre, day, _cover(_need(erlangs)), slots)
    staffed = np.zeros(slots)
    for _, first, length in roster:
        staffed[first : first + length] += 1
    # Breaks, lunch and meetings take about an eighth of a shift off the phones.
    occupancy = np.clip(erlangs / np.maximum(staffed * (1 - SHRINKAGE), 1), 0.3, 0.92)
    return DayPlan(start.tz_convert("UTC"), occupancy, roster)


def _breaks(rng: np.random.Generator, length_s: int) -> list[tuple[int, int, str]]:
    """Planned (offset, seconds, activity) of breaks, lunch and meetings within a shift."""
    jitter = lambda spread: int(rng.integers(-spread, spread + 1))  # noqa: E731
    planned = []
    if length_s >= 6 * 3600:
        planned += [
            (2 * 3600 + jitter(600), 15 * 60, BREAK),
            (length_s // 2 - 15 * 60 + jitter(900), 30 * 60, LUNCH),
            (length_s - 2 * 3600 + jitter(600), 15 * 60, BREAK),
        ]
    elif length_s >= 4 * 3600:
        planned.append((length_s // 2 + jitter(600), 15 * 60, BREAK))
    if rng.random() < 0.15 and length_s >= 4 * 3600:
        planned.append((int(rng.integers(3600, length_s - 3600)), 30 * 60, MEETING))
    return sorted(planned)


def agent_day(centre: Centre, day: date, agent: int, first: int, slots: int) -> list[tuple]:
    """(activity, start, end) in UTC epoch seconds of one agent's day, login to logout,
    contiguous: the sum of the segments is the logged-in time."""
    plan = day_plan(centre, day)
    rng = _rng(centre, day, 1 + agent)
    day_start = int(plan.start.timestamp())
    login = day_start + first * SLOT_S + int(rng.integers(-300, 121))
    length = slots * SLOT_S
    logout = login + length + int(rng.integers(-120, 301))
    events = [(login + offset, seconds, name) for offset, seconds, name in _breaks(rng, length)]
    channels = [HANDLE_ACTIVITY[c] for c, _, _ in centre.channels]
    handle_means = [aht for _, _, aht in centre.channels]
    shares = centre.channel_shares
    mean_handle = centre.mean_handle_s
    last_slot = len(plan.occupancy) - 1
    segments: list[tuple] = []
    t = login
    while t < logout:
        if events and t >= events[0][0]:
            _, seconds, name = events.pop(0)
            segments.append((name, t, t + seconds))
            t += seconds
            continue
        limit = min(events[0][0] if events else logout, logout)
        occupancy = plan.occupancy[min(max((t - day_start) // SLOT_S, 0), last_slot)]
        wait = max(1, round(rng.exponential(mean_handle * (1 - occupancy) / occupancy)))
        if t + wait >= limit:
            segments.append((AVAILABLE, t, limit))
            t = limit
            continue
        segments.append((AVAILABLE, t, t + wait))
        t += wait
        if rng.random() < 0.03:
            pause = int(rng.integers(60, 301))
            segments.append((NOT_READY, t, t + pause))
            t += pause
            continue
        which = rng.choice(len(channels), p=shares)
        factor = min(math.exp(rng.normal(-0.125, 0.5)), MAX_HANDLE_FACTOR)
        handle = max(20, round(handle_means[which] * factor))
        talk = max(10, round(handle * 0.8))
        segments.append((channels[which], t, t + talk))
        segments.append((AFTER_CALL_WORK, t + talk, t + handle))
        t += handle
    return segments


@lru_cache(maxsize=32)
def day_frame(centre: Centre, day: date) -> pd.DataFrame:
    """Every segment of every agent working on one local day (not to be mutated)."""
    plan = day_plan(centre, day)
    users, activities, starts, ends = [], [], [], []
    for agent, first, slots in plan.roster:
        who = user_identifier(centre, agent)
        for activity, begin, finish in agent_day(centre, day, agent, first, slots):
            users.append(who)
            activities.append(activity)
            starts.append(begin)
            ends.append(finish)
    return pd.DataFrame(
        {
            "user_identifier": pd.Series(users, dtype=object),
            "external_activity": pd.Series(activities, dtype=object),
            "start_utc": pd.to_datetime(np.array(starts, dtype=np.int64), unit="s", utc=True),
            "end_utc": pd.to_datetime(np.array(ends, dtype=np.int64), unit="s", utc=True),
        }
    )


def segments(centre: Centre, start: datetime, end: datetime, now: datetime) -> pd.DataFrame:
    """Segments overlapping [start, end) as a live ACD reports them at `now`: nothing that
    begins later, and the state each agent is in at `now` open (no end)."""
    tz = centre.timezone
    first_day = (pd.Timestamp(start) - pd.Timedelta(hours=3)).tz_convert(tz).date()
    last_day = (pd.Timestamp(end) + pd.Timedelta(minutes=10)).tz_convert(tz).date()
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    frame = pd.concat([day_frame(centre, day) for day in days], ignore_index=True)
    now_ts = pd.Timestamp(now)
    frame = frame[frame["start_utc"] < now_ts].copy()
    frame.loc[frame["end_utc"] > now_ts, "end_utc"] = pd.NaT
    overlaps = (frame["start_utc"] < pd.Timestamp(end)) & (
        frame["end_utc"].isna() | (frame["end_utc"] > pd.Timestamp(start))
    )
    return frame[overlaps].sort_values(["user_identifier", "start_utc"]).reset_index(drop=True)
