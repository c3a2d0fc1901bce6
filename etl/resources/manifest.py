"""Which file holds each slot of the warehouse's data now: one manifest per unit.

A slot is one owner's rows of one table for one month or one day (facts), or the whole of a
registry or mapping. Every version of a slot is its own immutable file; the manifest names the
current one. A unit is an integration (its facts, day sums, quarantine, import log and
registry rows, whatever data kind: one import changes them together) or the mappings. The
manifest of a unit is changed only under the unit's lock, by one `Transaction` at a time, and
replaced atomically; readers of the catalog never read it (the catalog lists the files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from etl.resources.files import replace_atomically

MAPPINGS_UNIT = "_mappings"  # integration ids start with a letter: no clash
WHOLE = "all"  # the slot of a registry or mapping file


def unit_of(owner: str) -> str:
    """`berlin_cloud` and `berlin_cloud.contacts` (the quarantine's and import log's owners)
    belong to the unit `berlin_cloud`."""
    return owner.split(".", 1)[0]


def key_of(table: str, owner: str, slot: str) -> str:
    return f"{table}|{owner}|{slot}"


@dataclass(frozen=True)
class Entry:
    """One current file: its path relative to the warehouse, rows, and its columns' hash."""

    path: str
    rows: int
    schema: str

    def to_json(self) -> list:
        return [self.path, self.rows, self.schema]

    @classmethod
    def from_json(cls, value: list) -> Entry:
        path, rows, schema = value
        return cls(path, int(rows), schema)


@dataclass
class Manifest:
    """The current files of one unit, and how many commits it has had."""

    unit: str
    generation: int = 0
    files: dict[str, Entry] = field(default_factory=dict)

    # -- reading ------------------------------------------------------------------------------
    def get(self, table: str, owner: str, slot: str) -> Entry | None:
        return self.files.get(key_of(table, owner, slot))

    def slots(self, table: str, owner: str) -> dict[str, Entry]:
        """Slot -> entry of one owner's table, in slot order."""
        prefix = f"{table}|{owner}|"
        found = {k[len(prefix) :]: e for k, e in self.files.items() if k.startswith(prefix)}
        return dict(sorted(found.items()))

    def owners(self, table: str) -> set[str]:
        return {k.split("|")[1] for k in self.files if k.split("|", 1)[0] == table}

    def tables(self) -> set[str]:
        return {k.split("|", 1)[0] for k in self.files}

    def paths(self) -> set[str]:
        return {e.path for e in self.files.values()}

    # -- changing (under the unit's lock) -------------------------------------------------------
    def put(self, table: str, owner: str, slot: str, entry: Entry | None) -> Entry | None:
        """Point the slot at `entry` (None: the slot has no rows any more); returns the entry it
        had."""
        key = key_of(table, owner, slot)
        previous = self.files.pop(key, None)
        if entry is not None:
            self.files[key] = entry
        return previous

    # -- persistence ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, unit: str) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(unit)
        return cls(
            unit=data["unit"],
            generation=int(data["generation"]),
            files={k: Entry.from_json(v) for k, v in data["files"].items()},
        )

    def save(self, path: Path) -> None:
        data = {
            "unit": self.unit,
            "generation": self.generation,
            "files": {k: e.to_json() for k, e in sorted(self.files.items())},
        }
        text = json.dumps(data, separators=(",", ":"))
        replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def copy(self) -> Manifest:
        return Manifest(self.unit, self.generation, dict(self.files))
