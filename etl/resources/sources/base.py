"""What every source kind provides: one method per data type, for one time window.

A source returns rows in the canonical shape (see `etl.schemas`) and does no validation of its
own beyond what only it can judge (a local time that does not exist, a line it cannot parse):
those it returns as `Extract.rejected`, so they reach the quarantine with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

import dagster as dg
import pandas as pd

if TYPE_CHECKING:
    from etl.config import Integration


class SourceError(RuntimeError):
    """The source could not deliver (unreachable, refused, unreadable). Names the integration,
    never a secret."""


@dataclass(frozen=True)
class WindowFailure:
    """Part of a window a source could not deliver completely: a file still being written, a
    file that changed while it was read, a file that cannot be read at all. The import writes
    none of the hours in [start, end) and fails them visibly; the rest of the window loads."""

    start: datetime
    end: datetime
    reason: str  # names the file or query and the problem, never a secret


@dataclass
class Extract:
    """What a source delivered for a window: canonical rows, plus rows it could not read.

    `frame` may carry a `source_ref` column (file and line, query row) so that rejected rows
    say where they came from. `rejected` has columns source_ref, row_json and rules.
    `failed` lists the parts of the window the source could not deliver completely.
    """

    frame: pd.DataFrame
    rejected: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["source_ref", "row_json", "rules"])
    )
    description: str = ""
    failed: list[WindowFailure] = field(default_factory=list)


class SourceSettings(dg.Config):
    """Base of each vendor's `source:` settings in integrations.yaml."""


class SourceResource(dg.ConfigurableResource):
    """A configured source for one integration. Subclasses set `settings_model`."""

    settings_model: ClassVar[type[SourceSettings]] = SourceSettings
    # Sources that revise recent data set the shortest revision window that catches it.
    min_revision_window_hours: ClassVar[int] = 1
    # Interval lengths (minutes) the source's contact data comes in; a source read at one fixed
    # grain names only that one.
    contact_intervals: ClassVar[tuple[int, ...]] = (15, 30, 60)
    # Whether an extract with no rows for an hour means the hour is empty. Most sources cannot
    # tell "nothing happened" from "nothing delivered" (a file not there yet, a table emptied,
    # an API answering [] by mistake), so an hour that held rows and now receives none fails
    # instead of being emptied (the integration's `emptied_hours` setting overrides this).
    reports_empty_windows: ClassVar[bool] = False
    # Secret resource fields -> the setting naming the environment variable that holds each.
    secret_envs: ClassVar[dict[str, str]] = {}
    # How the system is reached (integrations' `delivery`), as `wfm-etl vendors` lists it.
    deliveries: ClassVar[tuple[str, ...]] = ("cloud", "on_premise")
    # How its data arrives: `batch` (read per window from the system by the imports) and/or
    # `real-time` (landed as it happens, pushed or by a listener, and shown in the live views
    # within seconds). Every kind declares it; `wfm-etl vendors` lists it.
    timing: ClassVar[tuple[str, ...]] = ("batch",)
    # The data kinds it delivers; empty: those whose method the kind implements.
    data_kinds: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def delivered_data(cls) -> tuple[str, ...]:
        """The data kinds (`contacts`, `agent_status`) this kind of source delivers."""
        if cls.data_kinds:
            return cls.data_kinds
        return tuple(
            data
            for data in ("contacts", "agent_status")
            if getattr(cls, data) is not getattr(SourceResource, data)
        )

    @classmethod
    def real_time_data(cls, integration: Integration) -> tuple[str, ...]:
        """The data kinds of `integration` that arrive in real time (their freshness is
        checked); none for a kind read in batches."""
        return ()

    integration_id: str
    timezone: str
    interval_minutes: int

    @classmethod
    def from_integration(cls, integration: Integration) -> Self:
        """The resource for one integration. Each secret in `secret_envs` is passed as
        `dg.EnvVar(name)`, so its value is read when a run starts and never stored; an
        optional secret whose `*_env` setting is left out is not passed."""
        settings = cls.settings_model.model_validate(integration.source)
        secrets = {
            field: dg.EnvVar(getattr(settings, env))
            for field, env in cls.secret_envs.items()
            if getattr(settings, env) is not None
        }
        return cls(
            integration_id=integration.id,
            timezone=integration.timezone,
            interval_minutes=integration.interval_minutes,
            settings=settings,
            **secrets,
            **cls.environment_fields(),
        )

    @classmethod
    def environment_fields(cls) -> dict[str, Any]:
        """Fields besides the secrets that come from the environment (a kind's own)."""
        return {}

    def contacts(self, start: datetime, end: datetime) -> Extract:
        """Contact rows whose interval starts in [start, end) (UTC)."""
        raise NotImplementedError(f"{type(self).__name__} delivers no contact data")

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Agent-status segments that overlap [start, end) (UTC)."""
        raise NotImplementedError(f"{type(self).__name__} delivers no agent status data")
