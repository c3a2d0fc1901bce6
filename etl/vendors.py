"""The registered source kinds and what each offers, for `wfm-etl vendors`.

Everything comes from the registry (`VENDORS`) and the identifier table, so a vendor
registered there is listed without touching this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from etl.identifiers import IDENTIFIER_KINDS, IDENTIFIER_SETTINGS, KIND_LABELS
from etl.resources.sources import VENDORS, SourceResource

# The sources folder says what a kind is: a vendor's system, a universal source, built in.
KINDS = {"simulator": "built in", "universal": "universal", "vendors": "vendor"}
COLUMNS = (
    ("vendor", 24),
    ("kind", 11),
    ("delivery", 20),
    ("arrival", 18),
    ("data", 24),
    ("user identifier", 0),
)


@dataclass(frozen=True)
class VendorInfo:
    vendor: str
    kind: str
    deliveries: tuple[str, ...]
    timing: tuple[str, ...]  # batch, real-time
    data: tuple[str, ...]
    user_identifier: str


def _kind(source: type[SourceResource]) -> str:
    parts = source.__module__.split(".")
    return next((KINDS[part] for part in parts if part in KINDS), "other")


def _identifier(vendor: str, data: tuple[str, ...]) -> str:
    if "agent_status" not in data:
        return "-"
    kind = IDENTIFIER_KINDS.get(vendor, "any")
    label = "as the source delivers it" if kind == "any" else KIND_LABELS[kind].split(" ", 1)[1]
    if vendor in IDENTIFIER_SETTINGS:
        setting, _ = IDENTIFIER_SETTINGS[vendor]
        label += f" (or as source.{setting} says)"
    return label


def vendor_infos() -> list[VendorInfo]:
    """Every registered kind, built-in first, then universal sources, then vendors."""
    order = list(KINDS.values())
    infos = []
    for vendor, source in VENDORS.items():
        data = source.delivered_data()
        infos.append(
            VendorInfo(
                vendor,
                _kind(source),
                source.deliveries,
                source.timing,
                data,
                _identifier(vendor, data),
            )
        )
    return sorted(infos, key=lambda info: (order.index(info.kind), info.vendor))


def vendors_table(infos: list[VendorInfo]) -> str:
    """The listing as aligned text: one line per kind."""

    def line(values: tuple[str, ...]) -> str:
        cells = [value.ljust(width) for value, (_, width) in zip(values, COLUMNS, strict=True)]
        return "".join(cells).rstrip()

    lines = [line(tuple(name for name, _ in COLUMNS))]
    for info in infos:
        lines.append(
            line(
                (
                    info.vendor,
                    info.kind,
                    ", ".join(info.deliveries),
                    ", ".join(info.timing),
                    ", ".join(info.data),
                    info.user_identifier,
                )
            )
        )
    return "\n".join(lines)
