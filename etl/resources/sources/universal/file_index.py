"""What each delivered file covers, so an hourly import reads only the files that hold its hour.

A drop folder fills with years of files; parsing all of them for every hourly partition would
make each tick slower the longer the integration runs. A contact file is indexed from its
times alone (its values are shaped when a window wants it), which is what a history import
pays for every file it does not import yet. The index keeps, per file, the key of
its content (path, size, SHA-256) and the first and last instant its rows belong to. A file is
read again only when it changed: same size and modification time means unchanged (as make and
rsync assume), otherwise its content hash decides, and a changed file is parsed again. The
index also records the format settings it was built with, so editing the format re-reads
every file once.

The index is a small JSON file, replaced atomically under a lock; concurrent runs of the same
integration merge their updates instead of overwriting each other. A run that must parse an
unknown file to index it first claims the file; a concurrent run (two history months import
in parallel from a folder nobody has indexed yet) skips files claimed by the other, indexes
the rest, and comes back for the skipped ones once their entries are saved. So each file is
parsed for the index once, by whichever run gets to it first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import pandas as pd

from etl.resources.files import file_lock, replace_atomically, try_lock

INDEX_VERSION = 2


@dataclass(frozen=True)
class FileEntry:
    """One file as last seen: its content key and the time span its rows belong to."""

    size: int
    mtime_ns: int
    sha256: str
    fingerprint: str
    first: str | None  # ISO instant (UTC) or None when the file holds nothing
    last: str | None
    open_ended: bool  # holds an agent-status segment without end: overlaps every later window
    rows: int  # records delivered, good and rejected
    rejected: int | None  # None: indexed from its times only, rejects not counted
    # A file that cannot be read: why, and the spans [first, last] (ISO, UTC) of the hours it
    # fails (the hours its times name, else the hour it was delivered and those its previous
    # version held); `first`..`last` then spans them all.
    problem: str | None = None
    failing: list[list[str]] | None = None

    def unchanged(self, size: int, mtime_ns: int, fingerprint: str) -> bool:
        return (self.size, self.mtime_ns, self.fingerprint) == (size, mtime_ns, fingerprint)

    def within(self, start: datetime, end: datetime) -> bool:
        """Whether everything the file holds belongs to [start, end)."""
        if self.first is None:
            return True
        first, last = pd.Timestamp(self.first), pd.Timestamp(self.last)
        return not self.open_ended and first >= pd.Timestamp(start) and last < pd.Timestamp(end)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        if self.first is None:
            return False
        first, last = pd.Timestamp(self.first), pd.Timestamp(self.last)
        return first < pd.Timestamp(end) and (self.open_ended or last >= pd.Timestamp(start))


def _document(entries: dict[str, FileEntry]) -> str:
    """The index as JSON, one file per line: readable, and written by the C encoder (an
    indented document is encoded in Python, and the index is saved every few files while
    years of files are indexed)."""
    files = ",\n".join(
        f"{json.dumps(key)}: {json.dumps(vars(entry))}" for key, entry in sorted(entries.items())
    )
    return f'{{"version": {INDEX_VERSION}, "files": {{\n{files}\n}}}}\n'


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileIndex:
    """The index of one integration's files (for one data kind each, keyed `kind:path`)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock_path = path.with_suffix(path.suffix + ".lock")
        self._stamp = self._mtime()
        self.entries: dict[str, FileEntry] = self._read()
        self.changed: dict[str, FileEntry | None] = {}
        self.claims: list[IO[bytes]] = []
        self.claimed: set[str] = set()

    def _mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _read(self) -> dict[str, FileEntry]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        if document.get("version") != INDEX_VERSION:
            return {}
        entries = {}
        for key, raw in document.get("files", {}).items():
            try:
                entries[key] = FileEntry(**raw)
            except TypeError:
                continue
        return entries

    def claim(self, key: str) -> bool:
        """Claim an unknown file for indexing; False when another run holds it (True when this
        run holds it already: a file read again because it changed while read)."""
        if key in self.claimed:
            return True
        handle = try_lock(self._claim_path(key))
        if handle is None:
            return False
        self.claims.append(handle)
        self.claimed.add(key)
        return True

    def wait_for(self, key: str) -> None:
        """Wait until the run that claimed `key` has saved it, then read its entry."""
        with file_lock(self._claim_path(key)):
            entry = self._read().get(key)
        if entry is not None:
            self.entries[key] = entry

    def _claim_path(self, key: str) -> Path:
        name = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.path.parent / f"{self.path.stem}.claims" / f"{name}.lock"

    def get(self, key: str) -> FileEntry | None:
        return self.entries.get(key)

    def put(self, key: str, entry: FileEntry) -> None:
        if self.entries.get(key) != entry:
            self.entries[key] = entry
            self.changed[key] = entry

    def forget_missing(self, prefix: str, present: set[str]) -> list[FileEntry]:
        """Drop entries of files (of one kind) that are no longer in the folder; returns them."""
        gone = []
        for key in [k for k in self.entries if k.startswith(prefix) and k not in present]:
            gone.append(self.entries.pop(key))
            self.changed[key] = None
        return gone

    def refresh(self) -> None:
        """Take in entries other runs saved since this index was read (own changes win)."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if stamp != self._stamp:
            self._stamp = stamp
            self.entries = {**self._read(), **self.entries}

    def save(self) -> None:
        """Write this run's changes, merged into whatever another run wrote meanwhile, then
        release the files this run claimed."""
        try:
            self._save()
        finally:
            for handle in self.claims:
                handle.close()
            self.claims = []
            self.claimed = set()

    def _save(self) -> None:
        if not self.changed:
            return
        with file_lock(self.lock_path):
            current = self._read()
            for key, entry in self.changed.items():
                if entry is None:
                    current.pop(key, None)
                else:
                    current[key] = entry
            text = _document(current)
            replace_atomically(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        self.changed = {}
