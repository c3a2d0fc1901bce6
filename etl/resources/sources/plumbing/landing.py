"""Where records a source receives (rather than fetches) are kept until they are imported.

A stream listener cannot ask its ACD for the past again: an event it read and lost is lost.
So what it turns into records is landed on disk, durably, before it is considered done, and
the integration's import reads the landed records per window like any other source.

The interface is one call, `land(integration_id, records, idempotency_key)`, so producers do
not depend on how records are kept (the project's shared landing store for pushed records can
stand behind the same call). `FileLandingStore` is the embedded implementation:

- one append-only JSON-lines file per integration and UTC day of landing, each line one batch
  `{"key", "landed_at", "records"}`, written with a single `write`, flushed and fsynced (and
  the directory fsynced when the file is new) before `land` returns;
- a batch whose idempotency key was landed in the last `idempotency_days` is not landed again
  (`land` returns False): a producer that retries after a crash or a timeout adds nothing;
- a torn last line (the machine stopped inside the write) is skipped when reading: its batch
  was never acknowledged;
- writers of one integration are serialised by a lock file; readers take no lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from etl.resources.files import file_lock, fsync_path

SUFFIX = ".jsonl"


class Landing(Protocol):
    """What a producer needs from a landing store."""

    def land(
        self, integration_id: str, records: Sequence[Mapping[str, Any]], idempotency_key: str
    ) -> bool:
        """Keep `records` durably; False when `idempotency_key` was landed already."""
        ...


@dataclass(frozen=True)
class LandedBatch:
    key: str
    landed_at: datetime
    records: list[dict[str, Any]]
    ref: str  # file and line, for messages and rejected rows


class FileLandingStore:
    """Landed batches as JSON lines under `root/<integration_id>/<YYYY-MM-DD>.jsonl`."""

    def __init__(self, root: Path, idempotency_days: int = 2, clock=None) -> None:
        self.root = Path(root)
        self.idempotency_days = idempotency_days
        self.clock = clock or (lambda: datetime.now(UTC))

    def folder(self, integration_id: str) -> Path:
        return self.root / integration_id

    def land(
        self, integration_id: str, records: Sequence[Mapping[str, Any]], idempotency_key: str
    ) -> bool:
        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        folder = self.folder(integration_id)
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / ".lock"):
            now = self.clock()
            if idempotency_key in self._recent_keys(integration_id, now):
                return False
            line = json.dumps(
                {"key": idempotency_key, "landed_at": now.isoformat(), "records": list(records)},
                ensure_ascii=False,
                separators=(",", ":"),
                default=str,
            )
            path = folder / f"{now:%Y-%m-%d}{SUFFIX}"
            append_durably(path, (line + "\n").encode("utf-8"))
        return True

    def batches(self, integration_id: str, since: datetime | None = None) -> Iterator[LandedBatch]:
        """Every batch landed on or after the UTC day of `since` (all when None), oldest
        first."""
        folder = self.folder(integration_id)
        if not folder.is_dir():
            return
        first_day = f"{since.astimezone(UTC):%Y-%m-%d}" if since is not None else ""
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            if path.stem >= first_day:
                yield from _read_batches(path)

    def _recent_keys(self, integration_id: str, now: datetime) -> set[str]:
        since = now - timedelta(days=self.idempotency_days)
        return {batch.key for batch in self.batches(integration_id, since)}


def _read_batches(path: Path) -> Iterator[LandedBatch]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return  # torn write: never acknowledged
            try:
                batch = json.loads(raw)
                yield LandedBatch(
                    batch["key"],
                    datetime.fromisoformat(batch["landed_at"]),
                    list(batch["records"]),
                    f"{path.name}:{number}",
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"landing file {path}, line {number}: unreadable ({exc})") from exc


def append_durably(path: Path, data: bytes) -> None:
    """Append `data` and make it survive a crash: fsync the file, and the folder when the file
    is new (its directory entry is data too). A torn line left by an earlier crash is cut off
    first, so it cannot merge with this one."""
    new = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _drop_torn_tail(fd)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_path(path.parent)


def _drop_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep = os.pread(fd, size, 0).rfind(b"\n") + 1
    os.ftruncate(fd, keep)
