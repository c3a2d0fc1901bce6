"""`vendor: sikom`: Sikom's contact-centre data, from its database or from CSV exports.

Sikom publishes no schema of its database or its exports, so this preset assumes none: the
integration names the table (or the files) and which column holds which field, and says in
which time zone Sikom writes its times (`source_timezone`, the integration's timezone when not
given). What the preset adds over `vendor: database` and `vendor: csv`:

- no SQL to write: the query is built from the table and column names (identifiers quoted by
  the database's own rules, the window bound as parameters, never formatted into the text),
  selecting only the mapped columns, ordered by time and then by `order_by` (a column that
  orders rows as written, which `ambiguous_times: order` needs to tell the two equal local
  times of a fall-back night apart);
- times are read as wall-clock times of Sikom's time zone, not of the integration's: a
  database in Oslo feeding a WFM integration planned in London is read right;
- contacts are bound to the window by their interval start, agent-status rows by overlap
  (start before the window's end, end after its start or empty: a state still going on);
- Sikom's user identifier is the agent's user name (checked like every user-name vendor).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator

from etl.resources.sources.base import Extract, SourceResource, SourceSettings
from etl.resources.sources.plumbing import shaping
from etl.resources.sources.plumbing.shaping import (
    AgentStatusMapping,
    ContactMapping,
    StrictConfig,
    TimeMode,
    ValueFormat,
)
from etl.resources.sources.universal.csv_files import CsvSettings, CsvSource
from etl.resources.sources.universal.database import ConnectionSettings, QuerySource

# Which bound window parameters compare with times stored each way.
WINDOW_BOUNDS = {
    "local": ("local_start", "local_end"),
    "utc": ("window_start", "window_end"),
    "epoch": ("window_start_epoch", "window_end_epoch"),
}
TIME_FIELD = {"contacts": "interval_start", "agent_status": "start"}


class SikomTable(StrictConfig):
    """Where one data kind is in Sikom's database (mixed into a mapping, whose `columns` map
    the table's columns to fields)."""

    table: str = Field(min_length=1, description="table or view name, as the database spells it")
    schema_name: str | None = Field(
        default=None, alias="schema", description="its schema (PostgreSQL) or database (MariaDB)"
    )
    order_by: list[str] = Field(
        default_factory=list,
        description="columns that order the rows as Sikom wrote them (an id), for "
        "ambiguous_times: order; the time column comes first in any case",
    )

    def source_columns(self) -> list[str]:
        return list(self.columns)

    def column_for(self, target: str) -> str | None:
        columns: dict[str, str] = self.columns
        return next((source for source, field in columns.items() if field == target), None)


class SikomContacts(SikomTable, ContactMapping):
    """The contacts table and which of its columns holds which contact field."""

    @model_validator(mode="after")
    def _keyed(self) -> SikomContacts:
        _require_fields(self, ["external_queue_id", "interval_start", *shaping.CONTACT_VALUES])
        if self.channel is None:
            _require_fields(self, ["channel"])
        return self


class SikomAgentStatus(SikomTable, AgentStatusMapping):
    """The agent-status table and which of its columns holds which segment field."""

    @model_validator(mode="after")
    def _keyed(self) -> SikomAgentStatus:
        _require_fields(self, ["user_identifier", "external_activity", "start", "end"])
        return self


def _require_fields(section: SikomTable, fields: list[str]) -> None:
    missing = [f for f in fields if section.column_for(f) is None]
    if missing:
        raise ValueError(
            f"name the column of {', '.join(missing)} in columns (column name: field); Sikom's "
            "schema is not published, so no column is assumed"
        )


class SikomFormat(ValueFormat):
    """How Sikom's database columns hold times and durations: local times by default."""

    time: TimeMode = Field(
        default="local",
        description="local: wall-clock time in source_timezone; utc: timestamps in UTC; "
        "epoch: seconds since 1970 UTC",
    )

    @field_validator("time")
    @classmethod
    def _column_times(cls, value: TimeMode) -> TimeMode:
        if value == "iso":
            raise ValueError("time: iso is for text; database columns are local, utc or epoch")
        return value


class SikomDatabase(ConnectionSettings):
    """`source.database`: Sikom's database (or a replica of its tables)."""

    format: SikomFormat = SikomFormat()
    contacts: SikomContacts | None = None
    agent_status: SikomAgentStatus | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SikomDatabase:
        """Rows with the same local time come back in no particular order: telling the two
        of a fall-back night apart by order needs a column that orders them as written."""
        if self.format.ambiguous_times != "order":
            return self
        for kind in ("contacts", "agent_status"):
            section = getattr(self, kind)
            if section is not None and not section.order_by:
                raise ValueError(
                    f"{kind}: ambiguous_times: order needs order_by, the column(s) that order "
                    "the rows as Sikom wrote them (e.g. an id)"
                )
        return self


class SikomSettings(SourceSettings):
    """`source:` settings of `vendor: sikom`: its database or its CSV exports."""

    source_timezone: str | None = Field(
        default=None,
        description="the IANA time zone Sikom writes its times in; default: the integration's",
    )
    database: SikomDatabase | None = None
    csv: CsvSettings | None = None

    @field_validator("source_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SikomSettings:
        if (self.database is None) == (self.csv is None):
            raise ValueError("give exactly one of database and csv")
        return self


class SikomQuery(QuerySource):
    """Sikom's tables, read with a query built from the configured names."""

    settings: SikomDatabase

    def _section(self, kind: str) -> SikomContacts | SikomAgentStatus:
        holds = f"the {kind} table and its column names"
        return shaping.data_section(self.settings, kind, self.integration_id, holds)

    def query(self, kind: str) -> str:
        """The select built from the configured names, as SQL text in the database's own
        quoting, with the window as bound `:parameters` (checked and run like any query)."""
        dialect = self._target().url.get_dialect()(paramstyle="named")
        return str(self._select(kind).compile(dialect=dialect))

    def query_name(self, kind: str) -> str:
        return f"{kind} query (built from source.database.{kind})"

    def _select(self, kind: str) -> sa.Select:
        section = self._section(kind)
        table = sa.table(
            section.table,
            *(sa.column(name) for name in section.source_columns()),
            schema=section.schema_name,
        )
        low, high = (sa.bindparam(p) for p in WINDOW_BOUNDS[self.settings.format.time])
        start = table.c[section.column_for(TIME_FIELD[kind])]
        if kind == "contacts":
            condition = sa.and_(start >= low, start < high)
        else:
            end = table.c[section.column_for("end")]
            condition = sa.and_(start < high, sa.or_(end.is_(None), end > low))
        order = [sa.column(name) for name in section.order_by]
        return sa.select(*table.c).where(condition).order_by(start, *order)

    def mapping(self, kind: str) -> ContactMapping | AgentStatusMapping:
        return self._section(kind)

    def value_format(self, kind: str) -> ValueFormat:
        return self.settings.format


class SikomSource(SourceResource):
    """`vendor: sikom`: its database or its exports, in Sikom's own time zone."""

    deliveries: ClassVar[tuple[str, ...]] = ("on_premise",)
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model = SikomSettings
    settings: SikomSettings

    def contacts(self, start: datetime, end: datetime) -> Extract:
        return self._reader().contacts(start, end)

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        return self._reader().agent_status(start, end)

    def _reader(self) -> SikomQuery | CsvSource:
        """The universal source that reads Sikom's data, with local times in its zone."""
        common = {
            "integration_id": self.integration_id,
            "timezone": self.settings.source_timezone or self.timezone,
            "interval_minutes": self.interval_minutes,
        }
        if self.settings.database is not None:
            return SikomQuery(**common, settings=self.settings.database)
        return CsvSource(**common, settings=self.settings.csv)
