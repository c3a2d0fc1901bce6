"""`vendor: csv`: contact and agent-status data delivered as CSV files in a drop folder.

Customers without a vendor-specific integration export interval statistics (and agent state
changes) from their ACD as CSV files into a folder. A partition reads the rows whose interval
start falls in its window from whichever files hold them. The format section of the config
says how the files are written (delimiter, decimal separator, quoting, encoding, header row,
column and channel names, how times and durations are given, averages instead of sums).

- Only files that can hold the window are read: a file index (`file_index.py`) remembers
  what each file covers, keyed by path, size and content hash. A file is read in pieces
  (`csv_reader.py`), and only the rows of the window are kept, so a large file costs a
  piece's memory, not the file's.
- A file delivered again replaces what it held: a changed file is parsed again, and when two
  files hold the same interval (a corrected export under a new name), the rows of the most
  recently modified file win; the older rows are counted as superseded.
- A window is delivered complete or its incomplete hours are reported (`Extract.failed`),
  never emptied: a file younger than `min_file_age_s` or one that keeps changing while it is
  read (size, modification time or inode differ before and after) fails the hours it may
  hold (its named day, else the whole window); a file that cannot be read (encoding, no
  header, a key or time column missing or named twice) fails the hours its times name, else
  the hour it was delivered and those its previous version held.
- Files are read only inside the folder: a glob may not leave it, and a link that resolves
  outside it is refused, never opened.
- A bad row is quarantined with file, line, the fields as delivered and the rules; the good
  rows still load.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import ClassVar

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from etl.resources.files import replace_atomically
from etl.resources.sources.base import (
    Extract,
    SourceError,
    SourceResource,
    SourceSettings,
    WindowFailure,
)
from etl.resources.sources.plumbing import shaping
from etl.resources.sources.plumbing.locations import resolve, state_dir
from etl.resources.sources.plumbing.shaping import (
    AgentStatusMapping,
    ColumnsError,
    ContactMapping,
    RawRows,
    ShapeContext,
    Shaped,
)
from etl.resources.sources.universal.csv_reader import (
    CsvFormat,
    FileProblemError,
    Piece,
    read_pieces,
)
from etl.resources.sources.universal.file_index import FileEntry, FileIndex, sha256_of
from etl.schemas import STRING
from etl.validation import rows_as_json

__all__ = ["CsvAgentStatus", "CsvContacts", "CsvFormat", "CsvSettings", "CsvSource"]

# Unknown files a run parses for the index before saving it and releasing them to other runs.
CLAIMS_PER_SAVE = 16
PARSER_VERSION = "2"  # bump when parsing changes, so indexed files are read again
READ_BYTES = 1 << 20  # what one read of a file asks for
# How often a file that changed while it was read is read again before its hours fail.
READ_ATTEMPTS = 3
HOUR = pd.Timedelta(hours=1)
CANONICAL = {
    "contacts": {
        "integration_id": object,
        "external_queue_id": object,
        "channel": object,
        "interval_start": "datetime64[ns, UTC]",
        "interval_minutes": "int64",
        "offered": float,
        "answered": float,
        "abandoned": float,
        "handle_time_s": float,
        "source_ref": object,
    },
    "agent_status": {
        "integration_id": object,
        "user_identifier": object,
        "external_activity": object,
        "start_utc": "datetime64[ns, UTC]",
        "end_utc": "datetime64[ns, UTC]",
        "source_ref": object,
    },
}


def inside_folder(glob: str) -> str:
    """A glob names files inside the folder: relative, and no `..` step out of it (another
    integration's files are not this one's to read)."""
    parts = PurePosixPath(glob.replace("\\", "/")).parts
    if glob.startswith(("/", "~")) or ".." in parts:
        raise ValueError(
            f"glob {glob!r} reaches outside source.folder: a glob names files inside the "
            "folder, relative to it, without '..'"
        )
    return glob


class CsvContacts(ContactMapping):
    """Contact files: which files, and how their columns map to contact fields."""

    glob: str = Field(default="*.csv", description="files in the folder, e.g. 'intervals_*.csv'")
    format: CsvFormat | None = Field(default=None, description="replaces source.format")
    day_in_name: str | None = Field(
        default=None,
        description="when each file holds one local day and its name says which: the name "
        "(its path under the folder) as a strftime pattern, e.g. 'contacts_%Y-%m-%d.csv'. Such "
        "files are indexed from their names without being read, and a row outside its file's "
        "day is quarantined. Files whose names do not match are indexed from their times.",
    )

    @field_validator("glob")
    @classmethod
    def _glob_inside(cls, value: str) -> str:
        return inside_folder(value)

    @field_validator("day_in_name")
    @classmethod
    def _names_a_day(cls, value: str | None) -> str | None:
        """The pattern must give back a whole date and no time of day."""
        if value is None:
            return None
        sample = datetime(2024, 2, 29, 13, 45, 30)
        try:
            back = datetime.strptime(sample.strftime(value), value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a file name pattern: {exc}") from None
        if back.date() != sample.date():
            raise ValueError(f"{value!r} does not name a whole date: use %Y with %m and %d")
        if back.time() != datetime.min.time():
            raise ValueError(f"{value!r} names a time of day: day_in_name is for day files")
        return value


class CsvAgentStatus(AgentStatusMapping):
    """Agent-status files: which files, and how their columns map to segment fields."""

    glob: str = Field(description="files in the folder, e.g. 'agents/*.csv'")
    format: CsvFormat | None = Field(default=None, description="replaces source.format")

    @field_validator("glob")
    @classmethod
    def _glob_inside(cls, value: str) -> str:
        return inside_folder(value)


class CsvSettings(SourceSettings):
    """`source:` settings of `vendor: csv`."""

    folder: str = Field(description="the drop folder; relative paths are under WFM_HOME")
    state_dir: str | None = Field(
        default=None, description="where the file index is kept; default <warehouse>/state"
    )
    use_index: bool = Field(default=True, description="skip files that cannot hold the window")
    min_file_age_s: float = Field(
        default=0.0,
        ge=0,
        description="a file modified more recently is still being written: the hours it may "
        "hold wait for it (exporters that write in place)",
    )
    format: CsvFormat = CsvFormat()
    contacts: CsvContacts = CsvContacts()
    agent_status: CsvAgentStatus | None = None


# -- reading a file that holds still --------------------------------------------------------
class _ChangedError(Exception):
    """The file changed while it was read: what was read is no version of it."""


def _read_chunks(path: Path) -> Iterator[bytes]:
    """A delivered file's bytes, a megabyte at a time: the one place such a file is opened.
    `path` is resolved (inside the folder); opening never follows a link."""
    with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as handle:
        while chunk := handle.read(READ_BYTES):
            yield chunk


def _version(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _settled_chunks(
    path: Path, seen: os.stat_result, digest: hashlib._Hash | None
) -> Iterator[bytes]:
    """The file's bytes, as long as it stays the version `seen`: raises `_ChangedError` after
    the last byte when its size, modification time or inode changed while it was read."""
    size = 0
    try:
        for chunk in _read_chunks(path):
            size += len(chunk)
            if digest is not None:
                digest.update(chunk)
            yield chunk
        after = os.stat(path)
    except FileNotFoundError:
        raise _ChangedError from None
    if size != seen.st_size or _version(after) != _version(seen):
        raise _ChangedError


def _stays(path: Path, seen: os.stat_result) -> bool:
    try:
        return _version(os.stat(path)) == _version(seen)
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class _Problem:
    """Why a file cannot be read, and the span its times name when they can be read."""

    text: str
    span: tuple[pd.Timestamp, pd.Timestamp] | None


@dataclass
class _Reading:
    """What one pass over a file gave: the (window's) rows when shaped, the span of all it
    holds, its content hash when asked for, or the problem that stopped it."""

    shaped: Shaped | None = None
    coverage: FileCoverage | None = None
    digest: str | None = None
    problem: _Problem | None = None


class _Coverage:
    """The span and counts of a file's pieces, put together as they are read."""

    def __init__(self) -> None:
        self.first: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None
        self.open_ended = False
        self.rows = 0
        self.rejected: int | None = 0

    def add(self, first, last, open_ended: bool, rows: int, rejected: int | None) -> None:
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
            self.last = last if self.last is None else max(self.last, last)
        self.open_ended |= open_ended
        self.rows += rows
        self.rejected = (
            None if rejected is None or self.rejected is None else self.rejected + rejected
        )

    def add_shaped(self, shaped: Shaped) -> None:
        first, last, is_open = shaped.coverage()
        rows = len(shaped.frame) + len(shaped.rejected)
        self.add(first, last, is_open, rows, len(shaped.rejected))

    def result(self) -> FileCoverage:
        return FileCoverage(self.first, self.last, self.open_ended, self.rows, self.rejected)


class _Keeper:
    """Keeps a file's parsed rows beside the index as its pieces are read (written under a
    temporary name, renamed into place when the whole file was read)."""

    def __init__(self, target: Path):
        self.frame_path = target.with_name(f"{target.name}.frame.parquet")
        self.rejected_path = target.with_name(f"{target.name}.rejected.parquet")
        self.tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.part"
        self.writer: pq.ParquetWriter | None = None
        self.rejects: list[pd.DataFrame] = []
        self.ok = True

    def add(self, shaped: Shaped) -> None:
        if not self.ok:
            return
        try:
            table = pa.Table.from_pandas(shaped.frame, preserve_index=False)
            if self.writer is None:
                self.tmp.parent.mkdir(parents=True, exist_ok=True)
                self.writer = pq.ParquetWriter(self.tmp, table.schema)
            elif not table.schema.equals(self.writer.schema):
                table = table.cast(self.writer.schema)
            self.writer.write_table(table)
        except (pa.ArrowException, TypeError, ValueError):
            self.ok = False  # rows Arrow cannot hold as they are: parse again when needed
        self.rejects.append(shaped.rejected)

    def commit(self) -> None:
        if self.writer is None or not self.ok:
            self.discard()
            return
        self.writer.close()
        rejects = [r for r in self.rejects if len(r)] or self.rejects[:1]
        rejected = pd.concat(rejects, ignore_index=True) if len(rejects) > 1 else rejects[0]
        try:
            table = pa.Table.from_pandas(rejected, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError):
            self.discard()
            return
        replace_atomically(self.rejected_path, lambda tmp: pq.write_table(table, tmp))
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.frame_path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


def _pieces_rows(name: str, piece: Piece) -> RawRows:
    rows = piece.rows
    return RawRows(
        rows.table,
        f"{name}:",
        rows.lines,
        preset_rules={row: rule for row, (rule, _) in rows.malformed.items()},
        preset_json={
            row: json.dumps({"line": text}, ensure_ascii=False)
            for row, (_, text) in rows.malformed.items()
        },
        repeated=piece.header.repeated,
    )


def _concat(kind: str, parts: list[Shaped]) -> Shaped:
    if len(parts) == 1:
        return parts[0]
    frames = [p.frame for p in parts if len(p.frame)] or [parts[0].frame]
    rejects = [p.rejected for p in parts if len(p.rejected)] or [parts[0].rejected]
    return Shaped(
        kind,  # type: ignore[arg-type]
        pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0],
        pd.concat(rejects, ignore_index=True) if len(rejects) > 1 else rejects[0],
    )


# -- the source -----------------------------------------------------------------------------
@dataclass
class _Delivery:
    """What one file holds for the window, and how recent it is (newer files win)."""

    rank: tuple[int, str]
    shaped: Shaped


class CsvSource(SourceResource):
    """`vendor: csv`: files dropped in a folder, read for one window at a time."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud", "on_premise")
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model = CsvSettings
    settings: CsvSettings

    def contacts(self, start: datetime, end: datetime) -> Extract:
        return _Window(self, "contacts", start, end).extract()

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        return _Window(self, "agent_status", start, end).extract()

    # -- configuration ------------------------------------------------------------------------
    def _section(self, kind: str) -> CsvContacts | CsvAgentStatus:
        holds = f"the glob and columns of the {kind} files"
        return shaping.data_section(self.settings, kind, self.integration_id, holds)

    def _format(self, kind: str) -> CsvFormat:
        return self._section(kind).format or self.settings.format

    def folder(self) -> Path:
        return resolve(self.settings.folder)

    def index_path(self) -> Path:
        return state_dir(self.settings.state_dir) / "csv" / f"{self.integration_id}.json"

    def parsed_dir(self) -> Path:
        return state_dir(self.settings.state_dir) / "csv" / f"{self.integration_id}.parsed"

    def _parsed_path(self, kind: str, entry: FileEntry) -> Path:
        """Where the parsed rows of one indexed file version are kept (content, format and
        modification time in the name: a touched file's delivery hour may differ)."""
        name = f"{kind}-{entry.sha256[:32]}-{entry.fingerprint}-{entry.mtime_ns}"
        return self.parsed_dir() / name

    def _load_parsed(self, kind: str, entry: FileEntry) -> Shaped | None:
        keeper = _Keeper(self._parsed_path(kind, entry))
        try:
            frame, rejected = (
                _as_parsed(pq.read_table(path))
                for path in (keeper.frame_path, keeper.rejected_path)
            )
        except (FileNotFoundError, pa.ArrowException):
            return None
        return Shaped(kind, frame, rejected)  # type: ignore[arg-type]

    def _drop_parsed(self, kind: str, entry: FileEntry) -> None:
        """Forget the parsed rows of a file version that changed or went away."""
        keeper = _Keeper(self._parsed_path(kind, entry))
        for path in (keeper.frame_path, keeper.rejected_path):
            path.unlink(missing_ok=True)

    def _fingerprint(self, kind: str) -> str:
        """Everything that changes how a file is read: a change re-reads indexed files."""
        document = {
            "parser": PARSER_VERSION,
            "kind": kind,
            "section": self._section(kind).model_dump(),
            "format": self._format(kind).model_dump(),
            "timezone": self.timezone,
            "interval": self.interval_minutes,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]

    # -- one file -----------------------------------------------------------------------------
    def named_day(self, kind: str, name: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The UTC span [start, end) of the local day a contact file's name declares, when
        `contacts.day_in_name` is set and the name matches it."""
        pattern = self.settings.contacts.day_in_name if kind == "contacts" else None
        if pattern is None:
            return None
        try:
            day = datetime.strptime(name, pattern)
        except ValueError:
            return None
        midnights = pd.DatetimeIndex([day, day + pd.Timedelta(days=1)])
        local = midnights.tz_localize(
            self.timezone, ambiguous=np.ones(2, dtype=bool), nonexistent="shift_forward"
        )
        start, end = local.tz_convert("UTC")
        return start, end

    def _context(self, kind: str, name: str, modified: datetime) -> ShapeContext:
        """How a file's rows are shaped; a row whose time cannot be read belongs to the hour
        the file was delivered (the first hour of its day, for a file named by its day)."""
        day = self.named_day(kind, name)
        if day is not None:
            fallback = day[0].floor("h")
            label = "the first hour of the day the file name declares (contacts.day_in_name)"
        else:
            fallback = pd.Timestamp(modified).tz_convert("UTC").floor("h")
            label = "the hour the file was delivered (its modification time)"
        return ShapeContext(
            self.integration_id,
            self.timezone,
            self.interval_minutes,
            fallback_time=fallback,
            missing="reject",
            fallback_label=label,
        )

    def _shape(self, kind: str, raw: RawRows, context: ShapeContext) -> Shaped:
        section, fmt = self._section(kind), self._format(kind)
        if kind == "contacts":
            return shaping.shape_contacts(raw, section, fmt, context)
        return shaping.shape_agent_status(raw, section, fmt, context)

    def _columns_rule(self, kind: str, exc: ColumnsError) -> str:
        fmt = self._format(kind)
        rule = str(exc)
        found = exc.available
        if len(found) == 1 and any(d in found[0] for d in ",;\t|" if d != fmt.delimiter):
            rule += f" (one column only: is format.delimiter {fmt.delimiter!r} right?)"
        return rule

    def read_file(
        self,
        kind: str,
        name: str,
        path: Path,
        seen: os.stat_result,
        *,
        shape: bool,
        window: tuple[datetime, datetime] | None = None,
        keep: _Keeper | None = None,
        hashed: bool = False,
    ) -> _Reading:
        """One pass over a file, piece by piece: its rows shaped (only the `window`'s kept,
        everything written to `keep`), or for a contact file its times only (`shape=False`:
        what indexing it needs). Raises `_ChangedError` when the file changed while read."""
        modified = datetime.fromtimestamp(seen.st_mtime, UTC)
        context = self._context(kind, name, modified)
        section, fmt = self._section(kind), self._format(kind)
        day = self.named_day(kind, name)
        digest = hashlib.sha256() if hashed else None
        coverage = _Coverage()
        parts: list[Shaped] = []
        columns: ColumnsError | None = None
        span: tuple[pd.Timestamp, pd.Timestamp] | None = None
        problem: _Problem | None = None
        try:
            for piece in read_pieces(_settled_chunks(path, seen, digest), fmt):
                raw = _pieces_rows(name, piece)
                if columns is None:
                    try:
                        if shape:
                            shaped = self._shape(kind, raw, context)
                            if day is not None:
                                shaped = _within_named_day(shaped, *day)
                            coverage.add_shaped(shaped)
                            if keep is not None:
                                keep.add(shaped)
                            if window is not None:
                                shaped, _ = shaped.window(*window)
                            parts.append(shaped)
                        else:
                            first, last = shaping.contact_coverage(raw, section, fmt, context)
                            coverage.add(first, last, False, raw.table.num_rows, None)
                    except ColumnsError as exc:
                        columns, parts = exc, []
                if columns is not None:  # the hours the file would have filled, still
                    found = shaping.time_span(kind, raw, section, fmt, context)  # type: ignore[arg-type]
                    span = _union(span, found)
            if columns is not None:
                problem = _Problem(self._columns_rule(kind, columns), span)
        except FileProblemError as exc:
            where = f"line {exc.line}: " if exc.line > 1 else ""
            problem = _Problem(f"{where}{exc.rule}", None)
        except _ChangedError:
            if keep is not None:
                keep.discard()
            raise
        except OSError as exc:
            problem = _Problem(f"cannot read the file: {exc.strerror or exc}", None)
        if problem is not None:
            if keep is not None:
                keep.discard()
            if not _stays(path, seen):  # a problem of a file half written: read it again
                raise _ChangedError
            if day is not None:
                problem = replace(problem, span=(day[0], day[1] - pd.Timedelta(1, "ns")))
            return _Reading(problem=problem)
        if keep is not None:
            keep.commit()
        shaped = _concat(kind, parts) if parts else None
        return _Reading(shaped, coverage.result(), digest.hexdigest() if digest else None)


def _union(
    span: tuple[pd.Timestamp, pd.Timestamp] | None, other: tuple[pd.Timestamp, pd.Timestamp] | None
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    if span is None or other is None:
        return span or other
    return min(span[0], other[0]), max(span[1], other[1])


class _Window:
    """One window's read of the drop folder: which files hold it, what they hold for it, and
    which of its hours could not be delivered completely."""

    def __init__(self, source: CsvSource, kind: str, start: datetime, end: datetime):
        self.source = source
        self.kind = kind
        self.start, self.end = pd.Timestamp(start), pd.Timestamp(end)
        self.section = source._section(kind)
        try:
            inside_folder(self.section.glob)
        except ValueError as exc:
            raise SourceError(f"integration {source.integration_id!r}: {exc}") from None
        folder = source.folder()
        if not folder.is_dir():
            raise SourceError(
                f"integration {source.integration_id!r}: CSV folder {folder} does not exist or "
                "is not a folder (source.folder)"
            )
        self.folder = folder.resolve()
        self.fingerprint = source._fingerprint(kind)
        self.index = FileIndex(source.index_path()) if source.settings.use_index else None
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.deliveries: list[_Delivery] = []
        self.present: set[str] = set()
        self.parsed: set[str] = set()  # files read for their rows or times (once each)
        self.failed: list[WindowFailure] = []
        self.now = time.time()

    def extract(self) -> Extract:
        paths = [
            p
            for p in sorted(self.folder.glob(self.section.glob))
            if (p.is_file() or p.is_symlink()) and not p.name.startswith(".")
        ]
        if not paths:
            self.problems.append(f"no file in the folder matches {self.section.glob!r}")
        busy = [path for path in paths if not self.visit(path, wait=False)]
        index = self.index
        if index is not None:
            index.save()
        for path in busy:
            self.visit(path, wait=True)
        if index is not None:
            for gone in index.forget_missing(f"{self.kind}:", self.present):
                self.source._drop_parsed(self.kind, gone)
            index.save()
        frame, rejected, superseded = _combine(self.kind, self.deliveries)
        frame, rejected = _without_failed(self.kind, frame, rejected, self.failed)
        self.counts["superseded rows"] = superseded
        for problem in self.problems:
            dg.get_dagster_logger().warning(
                f"integration {self.source.integration_id!r}: {problem}"
            )
        return Extract(frame, rejected, self.describe(), self.failed)

    # -- failures -----------------------------------------------------------------------------
    def fail(self, first: pd.Timestamp, last: pd.Timestamp, reason: str) -> None:
        """The hours from `first`'s to `last`'s, as far as they lie in the window, cannot be
        delivered completely."""
        lo = max(first.floor("h"), self.start)
        hi = min(last.floor("h") + HOUR, self.end)
        if lo < hi:
            self.failed.append(WindowFailure(lo.to_pydatetime(), hi.to_pydatetime(), reason))

    def incomplete(self, name: str, reason: str) -> None:
        """A file not read as it stands (still written, changing): the hours it may hold wait,
        its day's when its name declares one, else the whole window's."""
        day = self.source.named_day(self.kind, name)
        first, last = day if day is not None else (self.start, self.end)
        self.fail(first, last - pd.Timedelta(1, "ns"), reason)
        self.problems.append(reason)

    def unreadable(self, name: str, entry: FileEntry) -> None:
        self.counts["unreadable"] += 1
        reason = f"{name}: {entry.problem}"
        self.problems.append(reason)
        for first, last in entry.failing or []:
            self.fail(pd.Timestamp(first), pd.Timestamp(last), reason)

    def problem_entry(
        self, name: str, problem: _Problem, stat: os.stat_result, previous: FileEntry | None
    ) -> FileEntry:
        """The index entry of a file that cannot be read, with the hours it fails."""
        if problem.span is not None:
            spans = [problem.span]
            text = f"{problem.text} (its hours fail until the file, or the configuration, is fixed)"
        else:
            delivered = pd.Timestamp(stat.st_mtime_ns, unit="ns", tz="UTC").floor("h")
            spans = [(delivered, delivered + HOUR - pd.Timedelta(1, "ns"))]
            if previous is not None and previous.problem is None and previous.first is not None:
                spans.append((pd.Timestamp(previous.first), pd.Timestamp(previous.last)))
            text = (
                f"{problem.text} (what it holds is unknown: the hour it was delivered, "
                f"{delivered:%Y-%m-%d %H:00} UTC, fails until it is fixed or removed)"
            )
        return FileEntry(
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            sha256="unreadable",
            fingerprint=self.fingerprint,
            first=min(s[0] for s in spans).isoformat(),
            last=max(s[1] for s in spans).isoformat(),
            open_ended=False,
            rows=0,
            rejected=None,
            problem=text,
            failing=[[a.isoformat(), b.isoformat()] for a, b in spans],
        )

    # -- one file -----------------------------------------------------------------------------
    def inside(self, path: Path, name: str) -> Path | None:
        """The file's resolved path, or None when it resolves outside the folder (a link to
        a file elsewhere): refused, never opened."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            if path.is_symlink():
                self.problems.append(f"{name}: a link to a file that does not exist: not read")
            return None
        if not real.is_file():
            return None  # a link to a folder
        if real.is_relative_to(self.folder):
            return real
        self.counts["refused"] += 1
        reason = (
            f"{name}: a link to {real}, outside the folder {self.folder}: not read (files are "
            "read only inside source.folder)"
        )
        self.problems.append(reason)
        try:
            delivered = pd.Timestamp(path.lstat().st_mtime_ns, unit="ns", tz="UTC")
        except OSError:
            return None
        self.fail(delivered, delivered, reason)
        return None

    def visit(self, path: Path, wait: bool) -> bool:
        """Index one file and keep what it holds for the window; False when another run is
        indexing it right now (come back with `wait=True`)."""
        name = path.relative_to(self.folder).as_posix()
        real = self.inside(path, name)
        if real is None:
            return True
        self.present.add(f"{self.kind}:{name}")
        minimum = self.source.settings.min_file_age_s
        for _ in range(READ_ATTEMPTS):
            try:
                stat = real.stat()
            except FileNotFoundError:
                return True
            age = self.now - stat.st_mtime
            if age < minimum:
                self.counts["too young"] += 1
                self.incomplete(
                    name,
                    f"{name}: modified {max(age, 0):.0f} s ago, younger than "
                    f"source.min_file_age_s ({minimum:g} s): still being written, so the hours "
                    "it may hold wait for it and are imported again later",
                )
                return True
            try:
                return self.version(real, name, stat, wait)
            except _ChangedError:
                self.counts["read again"] += 1
        self.incomplete(
            name,
            f"{name}: changed while it was read, {READ_ATTEMPTS} times (its size, modification "
            "time or inode differed before and after): the hours it may hold are not imported "
            "from a partial file; they are imported again later",
        )
        return True

    def version(self, path: Path, name: str, stat: os.stat_result, wait: bool) -> bool:
        """`visit` of the file as `stat` saw it."""
        index, kind, fingerprint = self.index, self.kind, self.fingerprint
        key = f"{kind}:{name}"
        if index is not None and wait:
            index.wait_for(key)  # until the run that claimed it has saved its entry
        entry = index.get(key) if index else None
        if entry is not None and entry.unchanged(stat.st_size, stat.st_mtime_ns, fingerprint):
            self.counts["known"] += 1
            return self.finish(path, name, stat, entry)
        if (day := self.source.named_day(kind, name)) is not None:
            self.counts["named"] += 1  # its name says what it covers: nothing to read yet
            if index is not None and entry is not None:
                self.source._drop_parsed(kind, entry)  # the file's previous version
            named = _named_entry(name, day, stat, fingerprint)
            if index is not None:
                index.put(key, named)
            return self.finish(path, name, stat, named)
        if index is None:  # every window reads every file anyway
            reading = self.source.read_file(
                kind, name, path, stat, shape=True, window=(self.start, self.end)
            )
            self.parsed.add(name)
            return self.finish(path, name, stat, self.entry_of(name, reading, stat, None), reading)
        if not wait:
            if not index.claim(key):
                return False
            index.refresh()  # another run may have indexed it since we looked
            known = index.get(key)
            if known is not None and known.unchanged(stat.st_size, stat.st_mtime_ns, fingerprint):
                self.counts["known"] += 1
                return self.finish(path, name, stat, known)
        # Contact files are indexed from their times only; agent-status files (whose open
        # segments need the whole row) are shaped, and what the window wants kept.
        whole = kind != "contacts"
        reading = self.source.read_file(
            kind,
            name,
            path,
            stat,
            shape=whole,
            window=(self.start, self.end) if whole else None,
            hashed=True,
        )
        if (
            entry is not None
            and entry.problem is None
            and reading.problem is None
            and (entry.sha256, entry.fingerprint) == (reading.digest, fingerprint)
        ):
            self.counts["known"] += 1  # touched, same content: kept rows are per mtime
            self.source._drop_parsed(kind, entry)
            entry = replace(entry, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        else:
            self.parsed.add(name)
            if entry is not None:
                self.source._drop_parsed(kind, entry)  # the file's previous version
            entry = self.entry_of(name, reading, stat, entry)
        index.put(key, entry)
        if len(index.claims) >= CLAIMS_PER_SAVE:
            index.save()  # and let a run waiting for these files go on
        return self.finish(path, name, stat, entry, reading if whole else None)

    def entry_of(
        self, name: str, reading: _Reading, stat: os.stat_result, previous: FileEntry | None
    ) -> FileEntry:
        if reading.problem is not None:
            return self.problem_entry(name, reading.problem, stat, previous)
        assert reading.coverage is not None
        return _entry(reading.coverage, stat, reading.digest or "", self.fingerprint)

    def finish(
        self,
        path: Path,
        name: str,
        stat: os.stat_result,
        entry: FileEntry,
        reading: _Reading | None = None,
    ) -> bool:
        """Keep what an indexed file holds for the window."""
        self.counts["files"] += 1
        if entry.problem is not None:
            self.unreadable(name, entry)
            return True
        if not entry.overlaps(self.start, self.end):
            self.counts["skipped"] += 1
            return True
        shaped = reading.shaped if reading is not None else None
        index = self.index
        if shaped is None and index is not None:
            shaped = self.source._load_parsed(self.kind, entry)
            self.counts["kept parsed"] += shaped is not None
        if shaped is None:
            keep = None
            if index is not None and not entry.within(self.start, self.end):
                keep = _Keeper(self.source._parsed_path(self.kind, entry))  # for other windows
            reading = self.source.read_file(
                self.kind, name, path, stat, shape=True, window=(self.start, self.end), keep=keep
            )
            self.parsed.add(name)
            if reading.problem is not None:  # a file named by its day, read for the first time
                entry = self.problem_entry(name, reading.problem, stat, entry)
                if index is not None:
                    index.put(f"{self.kind}:{name}", entry)
                self.unreadable(name, entry)
                return True
            shaped = reading.shaped
        assert shaped is not None
        window, _ = shaped.window(self.start, self.end)
        if len(window.frame) or len(window.rejected):
            self.deliveries.append(_Delivery((stat.st_mtime_ns, name), window))
        return True

    def describe(self) -> str:
        counts = self.counts
        text = (
            f"csv {self.source.settings.folder}/{self.section.glob}: {counts['files']} file(s), "
            f"{len(self.deliveries)} hold the window; {len(self.parsed)} parsed, "
            f"{counts['known']} known from the index, {counts['skipped']} hold only other hours"
        )
        if counts["named"]:
            text += f"; {counts['named']} indexed from their names (contacts.day_in_name)"
        if counts["kept parsed"]:
            text += f"; {counts['kept parsed']} read from the rows kept when they were parsed"
        if counts["too young"]:
            text += f"; {counts['too young']} still being written"
        if counts["read again"]:
            text += f"; {counts['read again']} read again (changed while read)"
        if counts["refused"]:
            text += f"; {counts['refused']} refused (links out of the folder)"
        if counts["superseded rows"]:
            text += f"; {counts['superseded rows']} row(s) superseded by newer files"
        if self.failed:
            hours = sum((f.end - f.start) // timedelta(hours=1) for f in self.failed)
            text += f"; {len(self.failed)} part(s) of the window not delivered ({hours} hour(s))"
        if counts["unreadable"]:
            text += f"; {counts['unreadable']} cannot be read"
        if self.problems:
            text += "; problems: " + "; ".join(self.problems[:5])
        return text


def _without_failed(
    kind: str, frame: pd.DataFrame, rejected: pd.DataFrame, failed: list[WindowFailure]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave out the rows (and rejects) of hours that failed: those hours are not imported
    at all, so they keep what they held."""
    if not failed:
        return frame, rejected
    column = shaping.KEYS[kind][-1]
    times, when = frame[column], rejected["partition_time"]
    drop = np.zeros(len(frame), dtype=bool)
    drop_rejected = np.zeros(len(rejected), dtype=bool)
    for failure in failed:
        lo, hi = pd.Timestamp(failure.start), pd.Timestamp(failure.end)
        drop |= ((times >= lo) & (times < hi)).to_numpy()
        drop_rejected |= ((when >= lo) & (when < hi)).to_numpy()
    return (
        frame[~drop].reset_index(drop=True),
        rejected[~drop_rejected].reset_index(drop=True),
    )


def _as_parsed(table: pa.Table) -> pd.DataFrame:
    """Kept rows as parsing gave them: text that was kept in Arrow comes back in Arrow (pandas
    would restore it as Python strings)."""
    frame = table.to_pandas()
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.StringDtype) and dtype != STRING:
            frame[name] = pd.arrays.ArrowStringArray(table.column(name).combine_chunks())
    return frame


@dataclass(frozen=True)
class FileCoverage:
    """The span a file's rows and rejects belong to, and its row counts (rejects: None when
    only its times were read)."""

    first: pd.Timestamp | None
    last: pd.Timestamp | None
    open_ended: bool
    rows: int
    rejected: int | None

    @classmethod
    def of(cls, shaped: Shaped) -> FileCoverage:
        first, last, is_open = shaped.coverage()
        rows = len(shaped.frame) + len(shaped.rejected)
        return cls(first, last, is_open, rows, len(shaped.rejected))


def _entry(coverage: FileCoverage, stat, digest: str, fingerprint: str) -> FileEntry:
    return FileEntry(
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sha256=digest,
        fingerprint=fingerprint,
        first=coverage.first.isoformat() if coverage.first is not None else None,
        last=coverage.last.isoformat() if coverage.last is not None else None,
        open_ended=coverage.open_ended,
        rows=coverage.rows,
        rejected=coverage.rejected,
    )


def _named_entry(name: str, day: tuple[pd.Timestamp, pd.Timestamp], stat, fingerprint: str):
    """The index entry of a file whose name declares its day: the day's span, unread (rows
    unknown; the key of its kept rows is its name, as its content was not hashed)."""
    start, end = day
    coverage = FileCoverage(start, end - pd.Timedelta(1, "ns"), False, 0, None)
    return _entry(coverage, stat, f"name-{sha256_of(name.encode())}", fingerprint)


def _within_named_day(shaped: Shaped, start: pd.Timestamp, end: pd.Timestamp) -> Shaped:
    """Quarantine the rows of a day file that lie outside the day its name declares: the index
    lists the file for that day only, so the windows those rows belong to would never read
    them. Every reject (a whole unreadable file too) is placed inside the day, so the window
    that reads the file reports it."""
    times = shaped.frame["interval_start"]
    outside = ((times < start) | (times >= end)).to_numpy()
    when = shaped.rejected["partition_time"]
    if not outside.any() and ((when >= start) & (when < end)).all():
        return shaped
    last = end - pd.Timedelta(1, "ns")
    rule = (
        f"interval_start: outside {start.isoformat()}..{end.isoformat()}, the day the file "
        "name declares (contacts.day_in_name)"
    )
    moved = shaped.frame[outside]
    rejects = shaping.rejects_frame(
        "contacts",
        moved["source_ref"].astype(str).to_numpy(),
        rows_as_json(moved, moved.index),
        [[rule] for _ in range(len(moved))],
        moved["interval_start"].clip(lower=start, upper=last).to_numpy(),
        moved,
    )
    rejected = shaped.rejected.assign(partition_time=when.clip(lower=start, upper=last))
    parts = [part for part in (rejected, rejects) if len(part)]  # never both empty here
    return Shaped(
        "contacts",
        shaped.frame[~outside].reset_index(drop=True),
        pd.concat(parts, ignore_index=True),
    )


def empty_frame(kind: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CANONICAL[kind].items()})


def _spans_overlap(kind: str, deliveries: list[_Delivery]) -> bool:
    """Whether two files' time spans overlap, so they may hold the same key. Daily or monthly
    exports never do, and then the newest-file-wins pass over every row can be skipped."""
    column = shaping.KEYS[kind][-1]  # the time in the key
    spans = []
    for delivery in deliveries:
        frame, rejected = delivery.shaped.frame, delivery.shaped.rejected
        times = [frame[column]] if len(frame) else []
        if len(rejected) and f"key_{column}" in rejected.columns:  # rejects keep their keys
            times.append(pd.to_datetime(rejected[f"key_{column}"], utc=True, errors="coerce"))
        if times:
            both = pd.concat(times).dropna()
            if len(both):
                spans.append((both.min(), both.max()))
    spans.sort()
    return any(later[0] <= earlier[1] for earlier, later in itertools.pairwise(spans))


def _combine(kind: str, deliveries: list[_Delivery]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """All files' rows for the window. Where files hold the same key (queue, channel and
    interval; user and start), the most recently modified file wins, for its good and its
    rejected rows alike: a corrected file replaces the rows it corrects."""
    key = list(shaping.KEYS[kind])
    key_columns = [f"key_{k}" for k in key]
    ranked = sorted(deliveries, key=lambda d: d.rank)
    if len(ranked) < 2 or not _spans_overlap(kind, ranked):  # no shared key possible
        frames = [d.shaped.frame for d in ranked if len(d.shaped.frame)]
        rejects = [d.shaped.rejected for d in ranked if len(d.shaped.rejected)]
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(kind)
        rejected = pd.concat(rejects, ignore_index=True) if rejects else shaping.empty_rejects()
        return frame, rejected.drop(columns=key_columns, errors="ignore"), 0
    frames = [d.shaped.frame.assign(_rank=r) for r, d in enumerate(ranked) if len(d.shaped.frame)]
    rejects = [
        d.shaped.rejected.assign(_rank=r) for r, d in enumerate(ranked) if len(d.shaped.rejected)
    ]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(kind).assign(_rank=0)
    rejected = (
        pd.concat(rejects, ignore_index=True)
        if rejects
        else shaping.empty_rejects().assign(_rank=0)
    )
    for column, name in zip(key_columns, key, strict=True):
        values = rejected[column] if column in rejected.columns else None
        rejected[column] = pd.Series(values, index=rejected.index, dtype=object).astype(
            frame[name].dtype
        )
    superseded = 0
    if len(ranked) > 1:
        mine = rejected[[*key_columns, "_rank"]].set_axis([*key, "_rank"], axis=1)
        parts = [part for part in (frame[[*key, "_rank"]], mine.dropna(subset=key)) if len(part)]
        if parts:
            newest = (
                pd.concat(parts, ignore_index=True)
                .groupby(key)["_rank"]
                .max()
                .rename("_newest")
                .reset_index()
            )
            good_newest = frame[key].merge(newest, on=key, how="left")["_newest"].to_numpy()
            bad_newest = mine[key].merge(newest, on=key, how="left")["_newest"].to_numpy()
            older_good = frame["_rank"].to_numpy() < np.nan_to_num(good_newest, nan=-1)
            older_bad = mine["_rank"].to_numpy() < np.nan_to_num(bad_newest, nan=-1)
            superseded = int(older_good.sum() + older_bad.sum())
            frame = frame[~older_good]
            rejected = rejected[~older_bad]
    frame = frame.drop(columns="_rank").reset_index(drop=True)
    rejected = rejected.drop(columns=["_rank", *key_columns]).reset_index(drop=True)
    return frame, rejected, superseded
