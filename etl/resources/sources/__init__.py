"""Source kinds by vendor: the one place a new vendor is registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.simulator import SimulatorSource

if TYPE_CHECKING:
    from etl.config import Integration

VENDORS: dict[str, type[SourceResource]] = {
    "simulator": SimulatorSource,
}

__all__ = [
    "VENDORS",
    "Extract",
    "SourceError",
    "SourceResource",
    "SourceSettings",
    "build_source",
    "validate_source_settings",
]


def validate_source_settings(integration: Integration) -> list[str]:
    """Problems with the integration's vendor and `source:` settings, as messages."""
    kind = VENDORS.get(integration.vendor)
    if kind is None:
        known = ", ".join(sorted(VENDORS))
        return [f"field 'vendor': unknown vendor {integration.vendor!r} (supported: {known})"]
    model = kind.settings_model
    unknown = sorted(set(integration.source) - set(model.model_fields))
    problems = [
        f"field 'source.{key}': unknown setting for {integration.vendor}" for key in unknown
    ]
    problems += [
        f"field 'data': vendor {integration.vendor!r} delivers no {data} data"
        for data in integration.data
        if getattr(kind, data) is getattr(SourceResource, data)  # method not implemented
    ]
    try:
        model.model_validate(integration.source)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            problems.append(f"field 'source.{field}': {err['msg']}")
    return problems


def build_source(integration: Integration) -> SourceResource:
    """The configured source resource for one integration."""
    return VENDORS[integration.vendor].from_integration(integration)
