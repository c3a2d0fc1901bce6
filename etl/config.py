"""The integrations config: `integrations.yaml` loaded into typed, validated models.

A bad file fails once, with one message that names every integration and field at fault,
because a data engineer fixing a config wants the whole list, not one error per restart.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etl import clock

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# libyaml's safe loader when installed (ten times faster: every run loads the config)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DataKind = Literal["contacts", "agent_status"]
SECRET_FIELD = re.compile(r"(password|passwd|secret|token|api_key|apikey|private_key|credential)")
INLINE_CREDENTIALS = re.compile(r"://[^/@\s]*:[^/@\s]+@")


class ConfigError(ValueError):
    """The integrations file is invalid; the message lists every problem."""


class Integration(BaseModel):
    """One connected source system, as a data engineer writes it in `integrations.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    name: str | None = None
    vendor: str
    delivery: Literal["cloud", "on_premise"]
    interval_minutes: Literal[15, 30, 60]
    data: tuple[DataKind, ...] = ("contacts",)
    timezone: str
    history_start: datetime
    revision_window_hours: int = Field(default=2, ge=1, le=24 * 14)
    settle_minutes: int = Field(default=5, ge=0, le=59)
    status: Literal["active", "paused"] = "active"
    max_rejected_share: float = Field(default=0.05, ge=0.0, le=1.0)
    max_partitions_per_run: int = Field(default=744, ge=1, le=24 * 366)
    max_runs_in_flight: int = Field(default=2, ge=1, le=50)
    # An hour that held rows and now receives none: `fail` keeps its rows and fails the hour,
    # `replace` empties it. Default: `replace` only for sources that can say an hour is empty.
    emptied_hours: Literal["fail", "replace"] | None = None
    source: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("data")
    @classmethod
    def _data_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one of contacts, agent_status")
        if len(set(value)) != len(value):
            raise ValueError("lists a data kind twice")
        return value

    @field_validator("history_start", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(), tzinfo=UTC)
        return value

    @field_validator("history_start")
    @classmethod
    def _utc_hour(cls, value: datetime) -> datetime:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        value = value.replace(minute=0, second=0, microsecond=0)
        now = clock.now()
        if value > now:
            raise ValueError(
                f"{value:%Y-%m-%d %H:%M} UTC is in the future (now {now:%Y-%m-%d %H:%M} UTC): "
                "the first hour to import must have begun"
            )
        return value

    @model_validator(mode="after")
    def _settle_inside_interval(self) -> Integration:
        if self.settle_minutes >= self.interval_minutes:
            raise ValueError(
                f"settle_minutes ({self.settle_minutes}) must be shorter than the interval "
                f"({self.interval_minutes} minutes)"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    @property
    def fingerprint(self) -> str:
        """A short hash of the whole configuration: an hour that kept failing under one
        configuration is retried when the configuration changes."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


# Set by the project's run launcher in a run process: the job the process runs.
RUN_JOB_ENV = "WFM_RUN_JOB"


@dataclass(frozen=True)
class Settings:
    """Where things live. Read from the environment when definitions load, never at import."""

    integrations_path: Path
    warehouse_dir: Path
    mappings_dir: Path
    # In a run process, the job it runs: only that integration's definitions are built there
    # (building all of fifty integrations took 0.6 s of each tick's run).
    run_job: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("WFM_HOME", PROJECT_ROOT))
        return cls(
            integrations_path=Path(env.get("WFM_INTEGRATIONS", home / "integrations.yaml")),
            warehouse_dir=Path(env.get("WFM_WAREHOUSE_DIR", home / "data" / "warehouse")),
            mappings_dir=Path(env.get("WFM_MAPPINGS_DIR", home / "mappings")),
            run_job=env.get(RUN_JOB_ENV) or None,
        )


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(integration)"


def _secret_problems(settings: Mapping[str, Any], prefix: str = "source") -> list[str]:
    """Secrets must be named environment variables (`<field>_env`), never values in the file."""
    problems = []
    for key, value in settings.items():
        field = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            problems += _secret_problems(value, field)
        elif SECRET_FIELD.search(key) and not key.endswith("_env"):
            problems.append(
                f"field {field!r}: secret given inline; put it in an environment variable "
                f"and name the variable in {key}_env"
            )
        elif isinstance(value, str) and INLINE_CREDENTIALS.search(value):
            problems.append(
                f"field {field!r}: URL with an inline password; put the URL in an environment "
                f"variable and name the variable in {key}_env"
            )
    return problems


def _integration_problems(
    raw: Any, index: int, check_sources: bool = True
) -> tuple[str, Integration | None, list[str]]:
    label = f"#{index + 1}"
    if not isinstance(raw, Mapping):
        return label, None, ["must be a mapping of fields"]
    if isinstance(raw.get("id"), str):
        label = raw["id"]
    problems = _secret_problems(raw.get("source") or {})
    defaults: dict = {}
    if check_sources:
        from etl.resources.sources import vendor_defaults

        defaults = vendor_defaults(raw.get("vendor"))
    try:
        integration = Integration.model_validate({**defaults, **raw})
    except ValidationError as exc:
        for err in exc.errors():
            field = _format_loc(err["loc"])
            got = f" (got {err['input']!r})" if "input" in err and err["loc"] else ""
            problems.append(f"field {field!r}: {err['msg']}{got}")
        return label, None, problems
    if check_sources:
        from etl.resources.sources import validate_source_settings

        problems += validate_source_settings(integration)
    return label, integration, problems


def parse_integrations(
    document: Any, origin: str = "integrations config", check_sources: bool = True
) -> list[Integration]:
    """Validate a parsed YAML document into integrations, or raise one `ConfigError`.
    `check_sources=False`: the integrations' own fields only, without their vendors' `source:`
    settings and vendor defaults (loading every vendor's module loads Dagster, a second): for
    the ingestion service, which reads no source; Dagster and the CLI check all of it."""
    if not isinstance(document, Mapping) or not isinstance(document.get("integrations"), list):
        raise ConfigError(f"{origin}: expected a top-level 'integrations:' list")
    defaults = document.get("defaults") or {}
    problems: list[str] = []
    integrations: list[Integration] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["integrations"]):
        merged = {**defaults, **raw} if isinstance(raw, Mapping) else raw
        label, integration, found = _integration_problems(merged, index, check_sources)
        problems += [f"integration {label!r}: {p}" for p in found]
        if integration is None:
            continue
        if integration.id in seen:
            problems.append(f"integration {label!r}: field 'id': duplicate id {integration.id!r}")
        seen.add(integration.id)
        integrations.append(integration)
    if problems:
        raise ConfigError(f"{origin} is invalid:\n  " + "\n  ".join(problems))
    return integrations


def load_integrations(path: Path, check_sources: bool = True) -> list[Integration]:
    """Read and validate the integrations file at `path` (`check_sources`: see
    `parse_integrations`)."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: integrations file not found (set WFM_INTEGRATIONS)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_integrations(document, origin=str(path), check_sources=check_sources)
