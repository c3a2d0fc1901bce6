"""`vendor: avaya_cms`: Avaya Call Management System interval data, a preset of `database`.

The integration gives only the connection (`url_env`: an SQLAlchemy URL to the CMS database or
a replica of its tables) and the splits/skills to import; the project supplies the query over
the CMS interval table `hsplit` (`sql/sources/avaya_cms_hsplit.sql`) and its mapping:

- external queue = the split/skill number; channel = calls.
- interval start = `starttime_utc`, epoch seconds (the form the CMS uses for UTC times; Avaya
  CMS Supervisor Reports R21, "Raw data format information": dates like 1628284958 "are in
  Unix Epoch time ... seconds since January 1, 1970 UTC"). Rows are selected and keyed on it,
  never on `row_date` + `starttime`, the local start time that repeats when clocks go back.
- offered = CALLSOFFERED, answered = ACDCALLS, abandoned = ABNCALLS, answered within service
  level = ACCEPTABLE (ACD calls answered within the split's acceptable service level).
- handle time = ACDTIME + ACWTIME + HOLDTIME. The CMS keeps these as separate items: ACDTIME is
  the talk time on ACD calls, ACWTIME "the duration of all after call work associated with
  ACDCALLS", and HOLDTIME "the time that the call spent on hold", tracked as a call state, not
  an agent state (Avaya CMS Database Items and Calculations R21: split/skill items; "Personal
  calls"; "Multiple call handling"). Its standard dictionary averages each over ACDCALLS
  (AVG_ACD_TALK_TIME = ACDTIME / ACDCALLS, AVG_ACW_TIME = ACWTIME / ACDCALLS), so the handled
  time per answered call is their sum over ACDCALLS. Talk, hold and after-call work are also
  stored on their own (talk_time_s, hold_time_s, acw_time_s).

Agent states are not in `hsplit`; this preset delivers contact data only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import Field

from etl.config import PROJECT_ROOT
from etl.resources.sources.plumbing.shaping import AgentStatusMapping, ContactMapping, ValueFormat
from etl.resources.sources.universal.database import ConnectionSettings, QuerySource

HSPLIT_SQL = PROJECT_ROOT / "sql" / "sources" / "avaya_cms_hsplit.sql"
HSPLIT_MAPPING = ContactMapping(channel="calls")
HSPLIT_FORMAT = ValueFormat(time="epoch", duration_unit="s")


class AvayaCmsSettings(ConnectionSettings):
    """`source:` settings of `vendor: avaya_cms`: the connection and the splits."""

    splits: list[int] = Field(min_length=1, description="split/skill numbers to import")
    acd: int | None = Field(default=None, description="only this ACD (CMS with several ACDs)")


class AvayaCmsSource(QuerySource):
    """`vendor: avaya_cms`: the hsplit table, read with the project's query."""

    deliveries: ClassVar[tuple[str, ...]] = ("on_premise",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model = AvayaCmsSettings
    settings: AvayaCmsSettings
    data_kinds = ("contacts",)

    def query(self, kind: str) -> str:
        self._contacts_only(kind)
        return HSPLIT_SQL.read_text(encoding="utf-8")

    def query_name(self, kind: str) -> str:
        return f"{kind} query (sql/sources/{HSPLIT_SQL.name})"

    def bind_parameters(self, kind: str) -> list[sa.BindParameter]:
        return [sa.bindparam("splits", expanding=True)]

    def mapping(self, kind: str) -> ContactMapping | AgentStatusMapping:
        self._contacts_only(kind)
        return HSPLIT_MAPPING

    def value_format(self, kind: str) -> ValueFormat:
        return HSPLIT_FORMAT

    def extra_parameters(self, kind: str) -> dict[str, Any]:
        return {"splits": list(self.settings.splits), "acd": self.settings.acd}

    def _contacts_only(self, kind: str) -> None:
        if kind != "contacts":
            raise NotImplementedError(
                f"integration {self.integration_id!r}: avaya_cms delivers contact data only "
                "(hsplit); read agent states with vendor: database and your own query"
            )
