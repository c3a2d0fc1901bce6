"""Source kinds by vendor: the one place a new vendor is registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.simulator.simulator import SimulatorSource
from etl.resources.sources.universal.api import ApiSource
from etl.resources.sources.universal.csv_files import CsvSource
from etl.resources.sources.universal.database import DatabaseSource
from etl.resources.sources.vendors.amazon_connect import AmazonConnectSource
from etl.resources.sources.vendors.avaya_cms import AvayaCmsSource
from etl.resources.sources.vendors.five9 import Five9Source
from etl.resources.sources.vendors.genesys_cloud import GenesysCloudSource
from etl.resources.sources.vendors.genesys_engage import GenesysEngageSource
from etl.resources.sources.vendors.mitel import MitelSource
from etl.resources.sources.vendors.sikom import SikomSource
from etl.resources.sources.vendors.talkdesk import TalkdeskSource
from etl.resources.sources.vendors.ujet import UjetSource
from etl.resources.sources.vendors.vonage import VonageSource

if TYPE_CHECKING:
    from etl.config import Integration

VENDORS: dict[str, type[SourceResource]] = {
    "simulator": SimulatorSource,
    "genesys_cloud": GenesysCloudSource,
    "talkdesk": TalkdeskSource,
    "five9": Five9Source,
    "ujet": UjetSource,
    "vonage": VonageSource,
    "amazon_connect": AmazonConnectSource,
    "csv": CsvSource,
    "database": DatabaseSource,
    "api": ApiSource,
    "avaya_cms": AvayaCmsSource,
    "mitel": MitelSource,
    "genesys_engage": GenesysEngageSource,
    "sikom": SikomSource,
}

__all__ = [
    "VENDORS",
    "Extract",
    "SourceError",
    "SourceResource",
    "SourceSettings",
    "build_source",
    "validate_source_settings",
    "vendor_defaults",
]


def vendor_defaults(vendor: object) -> dict:
    """Integration fields whose default depends on the vendor (applied under the file's
    `defaults:` and the integration's own fields): e.g. Genesys Cloud revises data up to
    ~48 h later, so its revision window defaults to 72 h."""
    kind = VENDORS.get(vendor) if isinstance(vendor, str) else None
    if kind is None or kind.min_revision_window_hours <= 1:
        return {}
    return {"revision_window_hours": kind.min_revision_window_hours}


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
        if data not in kind.delivered_data()
    ]
    if (
        "contacts" in integration.data
        and integration.interval_minutes not in kind.contact_intervals
    ):
        grains = ", ".join(str(m) for m in kind.contact_intervals)
        problems.append(
            f"field 'interval_minutes': {integration.vendor} contact data comes in {grains}-minute "
            f"intervals (got {integration.interval_minutes}); the views queue_intervals_30 and "
            "queue_intervals_60 roll them up"
        )
    minimum = kind.min_revision_window_hours
    if integration.revision_window_hours < minimum:
        problems.append(
            f"field 'revision_window_hours': {integration.vendor} revises recent data, so it "
            f"needs at least {minimum} hours (got {integration.revision_window_hours}; leave "
            f"the field out to get {minimum})"
        )
    try:
        model.model_validate(integration.source)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(["source", *(str(p) for p in err["loc"])])
            problems.append(f"field '{field}': {err['msg']}")
    return problems


def build_source(integration: Integration) -> SourceResource:
    """The configured source resource for one integration."""
    return VENDORS[integration.vendor].from_integration(integration)
