"""A Genesys Info Mart schema on a real PostgreSQL or MariaDB server, with realistic rows.

The tables and columns the `genesys_engage` preset reads, as Info Mart's physical data model
documents them (plus some of the columns it does not read, as a real schema has): the
dimensions `DATE_TIME` (a calendar of 15-minute intervals in its own time zone, keyed on the
UTC start in epoch seconds, with the tentative far-future row active facts end at),
`RESOURCE_`, `RESOURCE_STATE`, `MEDIA_TYPE`, `INTERACTION_TYPE`; the fact `SM_RES_STATE_FACT`;
and the aggregate table `AGT_QUEUE_SUBHR` behind the view `AG2_QUEUE_SUBHR`.

Info Mart's names are upper case. PostgreSQL folds unquoted names to lower case (Info Mart's
PostgreSQL schema is created unquoted), MariaDB keeps them: the tables are created under the
name each server resolves the unquoted upper-case name to.

Rows are generated as Python dicts too, so a test knows exactly what the preset must deliver,
and `revise_*` change rows the way Info Mart's later cycles do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

SENTINEL_TS = 2147483640  # the tentative end of active facts: a DATE_TIME row far ahead
MEDIA = [
    (1, "Voice", "VOICE"),
    (2, "E-Mail", "EMAIL"),
    (3, "Chat", "CHAT"),
    (4, "Workitem", "WORKITEM"),
]
INTERACTION_TYPES = [
    (1, "Inbound", "INBOUND", "InboundNew", "INBOUNDNEW"),
    (2, "Outbound", "OUTBOUND", "OutboundNew", "OUTBOUNDNEW"),
    (3, "Internal", "INTERNAL", "InternalNew", "INTERNALNEW"),
]
STATES = {  # key: (STATE_TYPE, STATE_TYPE_CODE, STATE_NAME, STATE_NAME_CODE)
    1: ("Unknown", "UNKNOWN", "Unknown", "UNKNOWN"),
    2: ("Ready", "READY", "Ready", "READY"),
    3: ("NotReady", "NOT_READY", "NotReady", "NOT_READY"),
    4: ("NotReady", "NOT_READY", "AfterCallWork", "AFTER_CALL_WORK"),
    5: ("Busy", "BUSY", "Busy", "BUSY"),
}
QUEUES = {  # RESOURCE_KEY: (RESOURCE_SUBTYPE, RESOURCE_NAME, media key)
    10: ("ACDQueue", "8001", 1),
    11: ("VirtualQueue", "VQ_Sales", 1),
    12: ("InteractionQueue", "IQ_Email", 2),
    13: ("InteractionQueue", "IQ_Chat", 3),
    14: ("InteractionQueue", "IQ_Workitems", 4),  # a media the default settings leave out
}
AGENTS = {20: "anna.berg", 21: "jonas.weber", 22: "Mia.Schulz"}
# One agent's day, repeated: (state key, seconds).
CYCLE = [(2, 170), (5, 245), (4, 55), (2, 95), (5, 410), (4, 40), (3, 600), (2, 35)]


def _tables(metadata: sa.MetaData, name) -> dict[str, sa.Table]:
    i, big, s = sa.Integer, sa.BigInteger, sa.String
    col = sa.Column
    return {
        "DATE_TIME": sa.Table(
            name("DATE_TIME"),
            metadata,
            col("date_time_key", i, primary_key=True, autoincrement=False),
            col("date_time_30min_key", i, nullable=False),
            col("date_time_hour_key", i, nullable=False),
            col("date_time_day_key", i, nullable=False),
            col("cal_date", sa.DateTime, nullable=False),
        ),
        "RESOURCE_": sa.Table(
            name("RESOURCE_"),
            metadata,
            col("resource_key", i, primary_key=True, autoincrement=False),
            col("tenant_key", i, nullable=False),
            col("switch_name", s(255)),
            col("resource_type", s(255)),
            col("resource_type_code", s(32)),
            col("resource_subtype", s(255)),
            col("resource_name", s(255)),
            col("agent_first_name", s(64)),
            col("agent_last_name", s(64)),
            col("employee_id", s(255)),
        ),
        "RESOURCE_STATE": sa.Table(
            name("RESOURCE_STATE"),
            metadata,
            col("resource_state_key", i, primary_key=True, autoincrement=False),
            col("state_type", s(64)),
            col("state_type_code", s(32)),
            col("state_name", s(64)),
            col("state_name_code", s(32)),
            col("create_audit_key", big, nullable=False, default=1),
            col("update_audit_key", big, nullable=False, default=1),
        ),
        "MEDIA_TYPE": sa.Table(
            name("MEDIA_TYPE"),
            metadata,
            col("media_type_key", i, primary_key=True, autoincrement=False),
            col("media_name", s(64)),
            col("media_name_code", s(32)),
        ),
        "INTERACTION_TYPE": sa.Table(
            name("INTERACTION_TYPE"),
            metadata,
            col("interaction_type_key", i, primary_key=True, autoincrement=False),
            col("interaction_type", s(64)),
            col("interaction_type_code", s(32)),
            col("interaction_subtype", s(64)),
            col("interaction_subtype_code", s(32)),
        ),
        "SM_RES_STATE_FACT": sa.Table(
            name("SM_RES_STATE_FACT"),
            metadata,
            col("sm_res_state_fact_key", big, primary_key=True, autoincrement=False),
            col("start_date_time_key", i, nullable=False),
            col("end_date_time_key", i, nullable=False),
            col("tenant_key", i, nullable=False),
            col("media_type_key", i, nullable=False),
            col("resource_key", i, nullable=False),
            col("resource_group_combination_key", i, nullable=False),
            col("resource_state_key", i, nullable=False),
            col("create_audit_key", big, nullable=False),
            col("update_audit_key", big, nullable=False),
            col("start_ts", i, nullable=False),
            col("end_ts", i, nullable=False),
            col("total_duration", i, nullable=False),
            col("lead_clip_duration", i, nullable=False),
            col("trail_clip_duration", i, nullable=False),
            col("active_flag", sa.SmallInteger, nullable=False),
            col("purge_flag", sa.SmallInteger, nullable=False),
        ),
        "AGT_QUEUE_SUBHR": sa.Table(
            name("AGT_QUEUE_SUBHR"),
            metadata,
            col("date_time_key", i, nullable=False),
            col("tenant_key", i, nullable=False),
            col("resource_key", i, nullable=False),
            col("media_type_key", i, nullable=False),
            col("interaction_type_key", i, nullable=False),
            col("resource_group_combination_key", i, nullable=False),
            col("entered", i, nullable=False),
            col("abandoned", i, nullable=False),
            col("abandoned_invite", i, nullable=False),
            col("distributed_", i, nullable=False),
            col("redirected", i, nullable=False),
            col("routed_other", i, nullable=False),
            col("cleared", i, nullable=False),
            col("accepted", i, nullable=False),
            col("accepted_thr", i, nullable=False),
            col("accepted_agent", i, nullable=False),
            col("accepted_agent_thr", i, nullable=False),
            col("engage_time", i, nullable=False),
            col("hold_time", i, nullable=False),
            col("wrap_time", i, nullable=False),
            col("accepted_time_max", i, nullable=False),
        ),
    }


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def quarter_floor(ts: int) -> int:
    return ts - ts % 900


@dataclass
class InfoMart:
    """The schema on one server; `states` and `queue_rows` mirror what it holds."""

    url: str
    calendar_tz: str = "Europe/Berlin"
    states: list[dict] = field(default_factory=list)
    queue_rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url)
        upper = self.engine.dialect.name in ("mysql", "mariadb")
        self.metadata = sa.MetaData()
        self.t = _tables(self.metadata, lambda n: n if upper else n.lower())
        self._fact_key = 1000

    # -- schema and dimensions ------------------------------------------------------------------
    def create(self, start: datetime, end: datetime) -> InfoMart:
        """The schema with its dimensions, and a calendar covering [start, end)."""
        self.metadata.create_all(self.engine)
        with self.engine.begin() as con:
            view = "AG2_QUEUE_SUBHR"
            con.exec_driver_sql(f"CREATE VIEW {view} AS SELECT * FROM AGT_QUEUE_SUBHR")
            con.execute(
                self.t["MEDIA_TYPE"].insert(),
                [{"media_type_key": k, "media_name": n, "media_name_code": c} for k, n, c in MEDIA],
            )
            con.execute(
                self.t["INTERACTION_TYPE"].insert(),
                [
                    dict(
                        zip(
                            [
                                "interaction_type_key",
                                "interaction_type",
                                "interaction_type_code",
                                "interaction_subtype",
                                "interaction_subtype_code",
                            ],
                            row,
                            strict=True,
                        )
                    )
                    for row in INTERACTION_TYPES
                ],
            )
            con.execute(
                self.t["RESOURCE_STATE"].insert(),
                [
                    {
                        "resource_state_key": k,
                        "state_type": a,
                        "state_type_code": b,
                        "state_name": c,
                        "state_name_code": d,
                    }
                    for k, (a, b, c, d) in STATES.items()
                ],
            )
            resources = (
                [
                    {
                        "resource_key": k,
                        "tenant_key": 1,
                        "switch_name": "SIP_Switch",
                        "resource_type": "Queue",
                        "resource_type_code": "QUEUE",
                        "resource_subtype": sub,
                        "resource_name": name,
                    }
                    for k, (sub, name, _) in QUEUES.items()
                ]
                + [
                    {
                        "resource_key": k,
                        "tenant_key": 1,
                        "switch_name": "SIP_Switch",
                        "resource_type": "Agent",
                        "resource_type_code": "AGENT",
                        "resource_subtype": "Agent",
                        "resource_name": name,
                        "agent_first_name": name.split(".")[0].title(),
                        "agent_last_name": name.split(".")[1].title(),
                        "employee_id": f"E{k}",
                    }
                    for k, name in AGENTS.items()
                ]
                + [
                    {
                        "resource_key": 30,
                        "tenant_key": 1,
                        "switch_name": "SIP_Switch",
                        "resource_type": "DN",
                        "resource_type_code": "DN",
                        "resource_subtype": "Extension",
                        "resource_name": "4711",
                    }
                ]
            )
            con.execute(self.t["RESOURCE_"].insert(), resources)
            con.execute(self.t["DATE_TIME"].insert(), self.calendar(start, end))
        return self

    def calendar(self, start: datetime, end: datetime) -> list[dict]:
        """DATE_TIME rows: one per 15 minutes, CAL_DATE the wall clock of the calendar's zone
        (which repeats when its clocks go back), and the far-future row."""
        zone = ZoneInfo(self.calendar_tz)
        rows = []
        for key in range(epoch(start), epoch(end), 900):
            wall = datetime.fromtimestamp(key, UTC).astimezone(zone)
            midnight = datetime.combine(wall.date(), datetime.min.time(), zone)
            rows.append(
                {
                    "date_time_key": key,
                    "date_time_30min_key": key - key % 1800,
                    "date_time_hour_key": key - key % 3600,
                    "date_time_day_key": epoch(midnight),
                    "cal_date": wall.replace(tzinfo=None),
                }
            )
        rows.append(
            {
                "date_time_key": SENTINEL_TS - SENTINEL_TS % 900,
                "date_time_30min_key": 0,
                "date_time_hour_key": 0,
                "date_time_day_key": 0,
                "cal_date": datetime(2038, 1, 19),
            }
        )
        return rows

    # -- facts ----------------------------------------------------------------------------------
    def state(self, agent: int, state: int, start: int, end: int | None, media: int = 1) -> dict:
        """One SM_RES_STATE_FACT row (end None: still active)."""
        self._fact_key += 1
        active = end is None
        end_ts = SENTINEL_TS if active else end
        return {
            "sm_res_state_fact_key": self._fact_key,
            "start_date_time_key": quarter_floor(start),
            "end_date_time_key": quarter_floor(end_ts),
            "tenant_key": 1,
            "media_type_key": media,
            "resource_key": agent,
            "resource_group_combination_key": 5,
            "resource_state_key": state,
            "create_audit_key": 1,
            "update_audit_key": 1,
            "start_ts": start,
            "end_ts": end_ts,
            "total_duration": 0 if active else end_ts - start,
            "lead_clip_duration": 0,
            "trail_clip_duration": 0,
            "active_flag": 1 if active else 0,
            "purge_flag": 0,
        }

    def agent_day(self, start: datetime, now: datetime) -> list[dict]:
        """Every agent's states from `start` until `now`, the last one still active; plus the
        noise a real table has: a state that lasted no time, and chat states of anna's."""
        rows = []
        for offset, agent in enumerate(AGENTS):
            ts, i = epoch(start) + 60 * offset, offset
            while True:
                state, seconds = CYCLE[i % len(CYCLE)]
                end = ts + seconds
                rows.append(self.state(agent, state, ts, None if end >= epoch(now) else end))
                if end >= epoch(now):
                    break
                if i % 5 == 3:  # a state change within the second
                    rows.append(self.state(agent, 3, end, end))
                ts, i = end, i + 1
        chat_from = epoch(start) + 1800
        rows.append(self.state(20, 2, chat_from, chat_from + 900, media=3))
        rows.append(self.state(20, 5, chat_from + 900, chat_from + 1500, media=3))
        return rows

    def queue_day(self, start: datetime, now: datetime) -> list[dict]:
        """AGT_QUEUE_SUBHR rows for every 15-minute interval that began before `now`: per
        queue, inbound (two resource group combinations) and some outbound."""
        rows = []
        for n, key in enumerate(range(epoch(start), epoch(now), 900)):
            for q, (queue, (_, _, media)) in enumerate(QUEUES.items()):
                for kind, combo in ((1, 1), (1, 2), (2, 1)):
                    entered = 3 + (n * 7 + q * 5 + combo * 3 + kind) % 17
                    abandoned = (n + q + combo) % 3
                    accepted = entered - abandoned - (n % 2)
                    rows.append(
                        {
                            "date_time_key": key,
                            "tenant_key": 1,
                            "resource_key": queue,
                            "media_type_key": media,
                            "interaction_type_key": kind,
                            "resource_group_combination_key": combo,
                            "entered": entered,
                            "abandoned": abandoned,
                            "abandoned_invite": 0,
                            "distributed_": accepted,
                            "redirected": 0,
                            "routed_other": 0,
                            "cleared": n % 2,
                            "accepted": accepted,
                            "accepted_thr": accepted - 1,
                            "accepted_agent": accepted,
                            "accepted_agent_thr": max(accepted - 2, 0),
                            "engage_time": accepted * (140 + q * 20),
                            "hold_time": accepted * 9,
                            "wrap_time": accepted * 31,
                            "accepted_time_max": 40 + n % 30,
                        }
                    )
        return rows

    def insert(self, states: Iterable[dict] = (), queue_rows: Iterable[dict] = ()) -> None:
        states, queue_rows = list(states), list(queue_rows)
        with self.engine.begin() as con:
            if states:
                con.execute(self.t["SM_RES_STATE_FACT"].insert(), states)
            if queue_rows:
                con.execute(self.t["AGT_QUEUE_SUBHR"].insert(), queue_rows)
        self.states += states
        self.queue_rows += queue_rows

    # -- what later Info Mart cycles do ------------------------------------------------------
    def end_state(self, fact_key: int, end: int) -> None:
        """An active state ends: the accumulating snapshot row is updated in place."""
        table = self.t["SM_RES_STATE_FACT"]
        values = {"end_ts": end, "end_date_time_key": quarter_floor(end), "active_flag": 0}
        with self.engine.begin() as con:
            con.execute(
                table.update().where(table.c.sm_res_state_fact_key == fact_key).values(**values)
            )
        row = next(r for r in self.states if r["sm_res_state_fact_key"] == fact_key)
        row.update(values, total_duration=end - row["start_ts"])

    def revise_interval(self, key: int, resource: int, combo: int, accepted_more: int) -> None:
        """Interactions that entered in interval `key` were accepted since: its row grows."""
        table = self.t["AGT_QUEUE_SUBHR"]
        row = next(
            r
            for r in self.queue_rows
            if (
                r["date_time_key"],
                r["resource_key"],
                r["interaction_type_key"],
                r["resource_group_combination_key"],
            )
            == (key, resource, 1, combo)
        )
        row["accepted_agent"] += accepted_more
        row["accepted"] += accepted_more
        row["entered"] += accepted_more
        row["engage_time"] += accepted_more * 200
        where = (
            (table.c.date_time_key == key)
            & (table.c.resource_key == resource)
            & (table.c.interaction_type_key == 1)
            & (table.c.resource_group_combination_key == combo)
        )
        values = {c: row[c] for c in ("accepted_agent", "accepted", "entered", "engage_time")}
        with self.engine.begin() as con:
            con.execute(table.update().where(where).values(**values))

    # -- what the preset must deliver ----------------------------------------------------------
    def expected_contacts(self, start: datetime, end: datetime, media=("VOICE", "CHAT", "EMAIL")):
        """(queue, channel, interval start epoch) -> offered, answered, abandoned, handle."""
        channels = {"VOICE": "calls", "CHAT": "chats", "EMAIL": "emails"}
        codes = {k: c for k, _, c in MEDIA}
        out: dict[tuple, list[int]] = {}
        for r in self.queue_rows:
            code = codes[r["media_type_key"]]
            if r["interaction_type_key"] != 1 or code not in media:
                continue
            if not epoch(start) <= r["date_time_key"] < epoch(end):
                continue
            key = (QUEUES[r["resource_key"]][1], channels[code], r["date_time_key"])
            sums = out.setdefault(key, [0, 0, 0, 0])
            sums[0] += r["entered"]
            sums[1] += r["accepted_agent"]
            sums[2] += r["abandoned"]
            sums[3] += r["engage_time"] + r["hold_time"] + r["wrap_time"]
        return out

    def expected_states(self, media: int = 1) -> list[tuple]:
        """(user, state name, start, end or None) of the states the preset reads."""
        return sorted(
            (
                AGENTS[r["resource_key"]],
                STATES[r["resource_state_key"]][2],
                r["start_ts"],
                None if r["active_flag"] else r["end_ts"],
            )
            for r in self.states
            if r["media_type_key"] == media and (r["active_flag"] or r["end_ts"] > r["start_ts"])
        )

    def dispose(self) -> None:
        self.engine.dispose()
