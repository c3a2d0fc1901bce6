"""`vendor: genesys_engage`: Genesys Engage (on-premise) through its Genesys Info Mart
database, a preset of `database`.

The integration gives the connection (`url_env`: an SQLAlchemy URL to the Info Mart database
or a replica) and what to import; the project supplies the queries (`sql/sources/`) and their
mappings, on Info Mart's physical data model (Genesys Info Mart 8.5 Physical Data Model and
Reporting and Analytics Aggregates Physical Data Model):

- Agent status from `SM_RES_STATE_FACT`: each row a summarized state of one agent on one
  media, "an accumulating snapshot that represents the duration of the summarized state", with
  START_TS / END_TS in seconds since 1970-01-01 UTC, joined to the `RESOURCE_STATE` dimension
  (STATE_TYPE: the media-neutral state such as Ready, NotReady, Busy; STATE_NAME: the
  media-specific one such as AfterCallWork) and to the agent's `RESOURCE_` row, whose
  RESOURCE_NAME is the agent's user name (the user identifier). A state still active has
  ACTIVE_FLAG = 1 and a tentative END_TS far ahead (Info Mart fills it in when the state ends):
  it is delivered open. One media is read (`agent_media`, VOICE by default): an agent logged in
  on several media has a state on each, at the same time.
- Queue intervals from the aggregate view `AG2_QUEUE_SUBHR` (ACD, virtual and interaction
  queues, 15-minute intervals of the `DATE_TIME` calendar): per queue (RESOURCE_NAME), media
  and interval, summed over interaction subtypes and resource group combinations, inbound
  interactions only. offered = ENTERED, answered = ACCEPTED_AGENT (accepted by an agent after
  being distributed from the queue), abandoned = ABANDONED, handle time = ENGAGE_TIME +
  HOLD_TIME + WRAP_TIME (also stored on their own as talk, hold and after-call work),
  answered within service level = ACCEPTED_AGENT_THR. Intervals are keyed on DATE_TIME_KEY,
  "the UTC-equivalent time at which the time interval started" in epoch seconds, so the local
  times the calendar repeats when its clocks go back stay two intervals.
- Revisions. Info Mart rewrites recent rows: facts are updated when states end, late data is
  merged in later transformation cycles, and the aggregation re-computes every interval a
  cycle touched (counts belong to the interval an interaction entered the queue, so they grow
  until its last interaction is done). The revision window therefore defaults to 24 hours.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field, field_validator

from etl.config import PROJECT_ROOT
from etl.resources.sources.plumbing.shaping import AgentStatusMapping, ContactMapping, ValueFormat
from etl.resources.sources.universal.database import ConnectionSettings, QuerySource
from etl.schemas import CHANNELS

SQL_DIR = PROJECT_ROOT / "sql" / "sources"
QUERIES = {
    "contacts": SQL_DIR / "genesys_engage_queue_subhr.sql",
    "agent_status": SQL_DIR / "genesys_engage_agent_states.sql",
}
EPOCH_SECONDS = ValueFormat(time="epoch", duration_unit="s")
DEFAULT_MEDIA = {"VOICE": "calls", "CHAT": "chats", "EMAIL": "emails"}


class GenesysEngageSettings(ConnectionSettings):
    """`source:` settings of `vendor: genesys_engage`: the connection and what to import."""

    media: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MEDIA),
        description="MEDIA_TYPE.MEDIA_NAME_CODE -> channel; only these media are imported",
    )
    queues: list[str] = Field(
        default_factory=list, description="queue RESOURCE_NAMEs to import; empty: every queue"
    )
    agent_media: str = Field(
        default="VOICE", min_length=1, description="the media whose agent states are imported"
    )
    activity: Literal["state_name", "state_type"] = Field(
        default="state_name",
        description="the external activity: RESOURCE_STATE.STATE_NAME or STATE_TYPE",
    )

    @field_validator("media")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("name at least one media type")
        wrong = sorted({c for c in value.values() if c not in CHANNELS})
        if wrong:
            raise ValueError(
                f"unknown channel(s) {', '.join(wrong)} (channels are {', '.join(CHANNELS)})"
            )
        return value


class GenesysEngageSource(QuerySource):
    """`vendor: genesys_engage`: Info Mart's agent states and queue aggregates."""

    deliveries: ClassVar[tuple[str, ...]] = ("on_premise",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model = GenesysEngageSettings
    settings: GenesysEngageSettings
    min_revision_window_hours = 24
    contact_intervals = (15,)  # the sub-hour aggregates

    def query(self, kind: str) -> str:
        return QUERIES[kind].read_text(encoding="utf-8")

    def query_name(self, kind: str) -> str:
        return f"{kind} query (sql/sources/{QUERIES[kind].name})"

    def bind_parameters(self, kind: str) -> list[sa.BindParameter]:
        if kind != "contacts":
            return []
        # Typed, so an empty list of queues is an empty list of text values.
        return [
            sa.bindparam("media", expanding=True, type_=sa.String()),
            sa.bindparam("queues", expanding=True, type_=sa.String()),
        ]

    def mapping(self, kind: str) -> ContactMapping | AgentStatusMapping:
        if kind == "contacts":
            return ContactMapping(channels=self.settings.media)
        return AgentStatusMapping(
            columns={
                "user_name": "user_identifier",
                self.settings.activity: "external_activity",
                "start_ts": "start",
                "end_ts": "end",
            }
        )

    def value_format(self, kind: str) -> ValueFormat:
        return EPOCH_SECONDS

    def extra_parameters(self, kind: str) -> dict[str, Any]:
        if kind == "contacts":
            return {
                "media": sorted(self.settings.media),
                "queues": list(self.settings.queues),
                "all_queues": 0 if self.settings.queues else 1,
            }
        return {"agent_media": self.settings.agent_media}
