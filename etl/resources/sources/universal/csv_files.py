"""`vendor: csv`: contact and agent-status data delivered as CSV files in a drop folder.

Customers without a vendor-specific integration export interval statistics (and agent state
changes) from their ACD as CSV files into a folder. A partition reads the rows whose interval
start falls in its window from whichever files hold them. The format section of the config
says how the files are written (delimiter, decimal separator, quoting, encoding, header row,
column and channel names, how times and durations are given, averages instead of sums).

- Only files that can hold the window are parsed: a file index (`file_index.py`) remembers
  what each file covers, keyed by path, size and content hash.
- A file delivered again replaces what it held: a changed file is parsed again, and when two
  files hold the same interval (a corrected export under a new name), the rows of the most
  recently modified file win; the older rows are counted as superseded.
- A bad row is quarantined with file, line and rule; a bad file (wrong encoding, no header,
  missing time or key column) becomes one quarantined row naming the file and the problem, in
  the partition of the hour the file was delivered (its modification time), because what it
  covers cannot be known. Other files and rows still load.

Files are parsed with pyarrow's multithreaded CSV reader when every record is one physical
line (the usual case), which gives exact line numbers cheaply; otherwise (quoted line breaks,
blank lines, ragged rows) with Python's csv module, line by line, which gives exact line
numbers and per-line rules for ragged rows.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from etl.resources.files import replace_atomically
from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.plumbing import shaping
from etl.resources.sources.plumbing.locations import resolve, state_dir
from etl.resources.sources.plumbing.shaping import (
    AgentStatusMapping,
    ContactMapping,
    MissingColumnsError,
    RawRows,
    ShapeContext,
    Shaped,
    ValueFormat,
)
from etl.resources.sources.universal.file_index import FileEntry, FileIndex, sha256_of
from etl.schemas import STRING
from etl.validation import rows_as_json

# Unknown files a run parses for the index before saving it and releasing them to other runs.
CLAIMS_PER_SAVE = 16
PARSER_VERSION = "1"  # bump when parsing changes, so indexed files are read again
LINE_BREAK = re.compile(r"\r\n|\n|\r")
LINE_BREAK_BYTES = re.compile(rb"\r\n|\n|\r")
# A byte that is not whitespace to str.strip() when it is ASCII.
TEXT_BYTE = re.compile(rb"[^ \t\n\r\x0b\x0c\x1c-\x1f]")
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


class CsvFormat(ValueFormat):
    """How the files are written. Value formats (time, durations, decimal separator, ...) are
    those of every universal source; these add the CSV layout."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str | None = Field(default='"', max_length=1)
    encoding: str = Field(
        default="utf-8",
        description="utf-8 (with or without byte order mark), cp1252, utf-16, or any Python "
        "codec name",
    )
    header_row: int = Field(
        default=1,
        ge=0,
        description="line number of the header (lines above it are skipped); 0: no header, "
        "columns are named 1, 2, 3, ...",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value

    @field_validator("quote_char")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


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
        description="ignore files modified more recently (exporters that write in place)",
    )
    format: CsvFormat = CsvFormat()
    contacts: CsvContacts = CsvContacts()
    agent_status: CsvAgentStatus | None = None


class FileProblemError(ValueError):
    """A whole file cannot be read; `line` is where the problem is."""

    def __init__(self, line: int, rule: str):
        super().__init__(rule)
        self.line = line
        self.rule = rule


@dataclass
class FileRows:
    """A file's records as text columns, the line each starts on, and ragged lines."""

    table: pa.Table
    lines: np.ndarray
    malformed: dict[int, tuple[str, str]] = field(default_factory=dict)
    blank_lines: int = 0
    slow_path: bool = False


# -- reading one file -----------------------------------------------------------------------
def decode(data: bytes, encoding: str) -> str:
    """The file's text; a wrong encoding is a problem naming the line and byte."""
    codec = codecs.lookup(encoding).name
    if codec == "utf-8":
        codec = "utf-8-sig"  # a byte order mark is fine either way
    boms = {codecs.BOM_UTF8: "utf-8", codecs.BOM_UTF16_LE: "utf-16", codecs.BOM_UTF16_BE: "utf-16"}
    for bom, name in boms.items():
        if data.startswith(bom) and not codec.startswith(name):
            raise FileProblemError(
                1, f"starts with a {name} byte order mark but format.encoding is {encoding}"
            )
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(codec, errors="replace").count("\n") + 1
        bad = exc.object[exc.start : exc.end].hex(" ")
        raise FileProblemError(
            line,
            f"not valid {encoding}: byte(s) {bad} at offset {exc.start}; check format.encoding",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise FileProblemError(
            line, f"contains NUL characters: not {encoding} text (UTF-16?); check format.encoding"
        )
    return text


def _dialect(fmt: CsvFormat) -> dict:
    if fmt.quote_char:
        return {"delimiter": fmt.delimiter, "quotechar": fmt.quote_char, "doublequote": True}
    return {"delimiter": fmt.delimiter, "quoting": csv.QUOTE_NONE}


def _split_header(text: str, fmt: CsvFormat) -> tuple[list[str] | None, str, int]:
    """(header fields or None, the data text after the header, line number of its first line)."""
    if fmt.header_row == 0:
        return None, text, 1
    position = 0
    for number in range(1, fmt.header_row + 1):
        match = LINE_BREAK.search(text, position)
        line_end = match.start() if match else len(text)
        if number == fmt.header_row:
            header_text = text[position:line_end]
            if not header_text.strip():
                raise FileProblemError(number, f"line {number} (format.header_row) is empty")
            rest = text[match.end() :] if match else ""
            return _header_fields(header_text, fmt), rest, number + 1
        if match is None:
            raise FileProblemError(
                number, f"file has {number} line(s); format.header_row is {fmt.header_row}"
            )
        position = match.end()
    raise AssertionError("unreachable")


def _header_fields(header_text: str, fmt: CsvFormat) -> list[str]:
    return next(csv.reader([header_text], **_dialect(fmt)))


def _names(header: list[str]) -> tuple[list[str], int]:
    """Column names (trimmed, made unique) and how many are named (trailing empty header
    fields come from trailing delimiters)."""
    named = len(header)
    while named and not header[named - 1].strip():
        named -= 1
    names: list[str] = []
    for position, raw in enumerate(header, start=1):
        name = raw.strip() or f"column_{position}"
        while name in names:
            name = f"{name} ({position})"
        names.append(name)
    return names, named


def read_rows(data: bytes, fmt: CsvFormat) -> tuple[FileRows, list[str]]:
    """A file's records as text columns named by its header. Raises `FileProblemError` for a
    file that cannot be read at all (encoding, empty, no header)."""
    fast = _read_utf8(data, fmt)
    if fast is not None:
        return fast
    text = decode(data, fmt.encoding)
    if not text.strip():
        raise FileProblemError(1, "empty file: no header and no rows")
    header, body, first_line = _split_header(text, fmt)
    body = body.rstrip("\r\n")
    if header is None:
        first = next(csv.reader(io.StringIO(body, newline=""), **_dialect(fmt)), [])
        header = [str(i) for i in range(1, len(first) + 1)]
        names, named = header, len(header)
    else:
        names, named = _names(header)
    if not body.strip():
        return FileRows(_empty_table(names), np.array([], dtype=np.int64)), names
    encoded = body.encode("utf-8")
    lines = encoded.count(b"\n") + 1
    rows = _body_rows(pa.py_buffer(encoded), lines, lambda: body, names, named, fmt, first_line)
    return rows, names


def _read_utf8(data: bytes, fmt: CsvFormat) -> tuple[FileRows, list[str]] | None:
    """`read_rows` of the usual file (UTF-8, the header on line 1, one record per line) on
    its bytes, without decoding it to text and encoding it again for Arrow: about a third of
    the reading time (bench/). None for any other file: `read_rows` reads it as text, and
    names its problems. A file whose records span lines or are ragged goes on to Python's
    reader from here, so that Arrow's reader does not parse it twice."""
    if codecs.lookup(fmt.encoding).name != "utf-8" or fmt.header_row != 1 or b"\x00" in data:
        return None
    if not data.isascii():
        try:
            data.decode("utf-8-sig")  # Arrow's reader would take bad bytes apart
        except UnicodeDecodeError:
            return None
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    line_break = LINE_BREAK_BYTES.search(data, start)
    if line_break is None:
        return None
    header_text = data[start : line_break.start()].decode("utf-8")
    end = len(data)
    while end > line_break.end() and data[end - 1] in b"\r\n":
        end -= 1
    content = TEXT_BYTE.search(data, line_break.end(), end)
    if not header_text.strip() or content is None or data[content.start()] >= 0x80:
        return None  # an empty header or body, or one only Unicode can tell apart from blank
    names, named = _names(_header_fields(header_text, fmt))
    after = line_break.end()
    body = pa.py_buffer(data).slice(after, end - after)
    lines = data.count(b"\n", after, end) + 1

    def text() -> str:
        return data[after:end].decode("utf-8")

    return _body_rows(body, lines, text, names, named, fmt, 2), names


def _body_rows(
    body: pa.Buffer,
    physical_lines: int,
    text: Callable[[], str],
    names: list[str],
    named: int,
    fmt: CsvFormat,
    first_line: int,
) -> FileRows:
    """The records after the header: Arrow's reader when each is one line of the UTF-8
    `body`, else Python's reader on its `text` (decoded only then)."""
    rows = _fast_rows(body, physical_lines, names, fmt, first_line)
    if rows is None:
        rows = _slow_rows(text(), names, named, fmt, first_line)
    return _without_empty_extras(rows, names, named)


def _without_empty_extras(rows: FileRows, names: list[str], named: int) -> FileRows:
    """Columns after the last header name come from trailing delimiters: dropped when empty."""
    for name in names[named:]:
        if _all_blank(rows.table.select([name])).all():
            rows.table = rows.table.drop_columns([name])
    return rows


def _empty_table(names: list[str]) -> pa.Table:
    return pa.table({name: pa.array([], pa.string()) for name in names})


def _fast_rows(
    body: pa.Buffer, physical_lines: int, names: list[str], fmt: CsvFormat, first_line: int
) -> FileRows | None:
    """pyarrow's reader on the UTF-8 text after the header, when every record is exactly one
    of its `physical_lines`; None otherwise."""
    ragged: list[object] = []

    def on_ragged(row: object) -> str:
        ragged.append(row)
        return "skip"

    slots = [f"f{i}" for i in range(len(names))]
    try:
        table = pacsv.read_csv(
            body,
            read_options=pacsv.ReadOptions(column_names=slots, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(
                delimiter=fmt.delimiter,
                quote_char=fmt.quote_char or False,
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=on_ragged,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(slots, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if ragged or table.num_rows != physical_lines:
        return None
    table = table.rename_columns(names)
    lines = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
    blank = _all_blank(table)
    if blank.any():
        table = table.filter(pa.array(~blank))
        lines = lines[~blank]
    return FileRows(table, lines, blank_lines=int(blank.sum()))


def _all_blank(table: pa.Table) -> np.ndarray:
    """Rows where every field is empty (e.g. a line of delimiters only). Only the rows whose
    first field is empty are looked at further: usually none are."""
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        rows = np.flatnonzero(blank)
        if rows.size == 0:
            break
        values = column if rows.size == table.num_rows else column.take(pa.array(rows))
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)
        blank[rows] = np.asarray(empty.to_numpy(zero_copy_only=False), dtype=bool)
    return blank


def _slow_rows(
    body: str, names: list[str], named: int, fmt: CsvFormat, first_line: int
) -> FileRows:
    """Python's csv reader, line by line: exact line numbers for records spanning lines, and
    a rule for each ragged line instead of failing the file."""
    width = len(names)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    lines: list[int] = []
    malformed: dict[int, tuple[str, str]] = {}
    blank = 0
    reader = csv.reader(io.StringIO(body, newline=""), **_dialect(fmt))
    consumed = 0
    try:
        for fields in reader:
            line = first_line + consumed
            consumed = reader.line_num
            if not any(f.strip() for f in fields):
                blank += 1
                continue
            if len(fields) > width and not any(f.strip() for f in fields[width:]):
                fields = fields[:width]  # trailing delimiters
            if named <= len(fields) < width:
                fields = fields + [""] * (width - len(fields))
            if len(fields) != width:
                rule = f"line has {len(fields)} fields, the header has {named}"
                malformed[len(lines)] = (rule, fmt.delimiter.join(fields))
                fields = [None] * width
            for position, value in enumerate(fields):
                columns[position].append(value)
            lines.append(line)
    except csv.Error as exc:
        raise FileProblemError(first_line + consumed, f"unreadable CSV: {exc}") from None
    table = pa.table(
        {name: pa.array(values, pa.string()) for name, values in zip(names, columns, strict=True)}
    )
    return FileRows(table, np.asarray(lines, dtype=np.int64), malformed, blank, slow_path=True)


# -- the source -----------------------------------------------------------------------------
@dataclass
class _Delivery:
    """What one file holds for the window, and how recent it is (newer files win)."""

    rank: tuple[int, str]
    shaped: Shaped


class CsvSource(SourceResource):
    """`vendor: csv`: files dropped in a folder, read for one window at a time."""

    settings_model = CsvSettings
    settings: CsvSettings

    def contacts(self, start: datetime, end: datetime) -> Extract:
        return self._extract("contacts", start, end)

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        return self._extract("agent_status", start, end)

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

    def _store_parsed(self, kind: str, entry: FileEntry, shaped: Shaped) -> None:
        """Keep what parsing a file gave, so importing its hours later does not parse again."""
        target = self._parsed_path(kind, entry)
        try:
            tables = {
                "frame": pa.Table.from_pandas(shaped.frame, preserve_index=False),
                "rejected": pa.Table.from_pandas(shaped.rejected, preserve_index=False),
            }
        except (pa.ArrowException, TypeError, ValueError):
            return  # rows Arrow cannot hold as they are: parse again when needed
        for part, table in tables.items():
            path = target.with_name(f"{target.name}.{part}.parquet")
            replace_atomically(path, lambda tmp, t=table: pq.write_table(t, tmp))

    def _load_parsed(self, kind: str, entry: FileEntry) -> Shaped | None:
        target = self._parsed_path(kind, entry)
        try:
            frame, rejected = (
                _as_parsed(pq.read_table(target.with_name(f"{target.name}.{part}.parquet")))
                for part in ("frame", "rejected")
            )
        except (FileNotFoundError, pa.ArrowException):
            return None
        return Shaped(kind, frame, rejected)

    def _drop_parsed(self, kind: str, entry: FileEntry) -> None:
        """Forget the parsed rows of a file version that changed or went away."""
        target = self._parsed_path(kind, entry)
        for part in ("frame", "rejected"):
            target.with_name(f"{target.name}.{part}.parquet").unlink(missing_ok=True)

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

    def parse_file(self, kind: str, name: str, data: bytes | OSError, modified: datetime) -> Shaped:
        """Everything one file holds: canonical rows and rejects (a bad file: one reject)."""
        shaped = self._parse(kind, name, data, modified)
        day = self.named_day(kind, name)
        return shaped if day is None else _within_named_day(shaped, *day)

    def _parse(self, kind: str, name: str, data: bytes | OSError, modified: datetime) -> Shaped:
        prepared = self._prepare(kind, name, data, modified)
        if isinstance(prepared, Shaped):
            return prepared
        raw, context = prepared
        section, fmt = self._section(kind), self._format(kind)
        try:
            if kind == "contacts":
                return shaping.shape_contacts(raw, section, fmt, context)
            return shaping.shape_agent_status(raw, section, fmt, context)
        except MissingColumnsError as exc:
            return self._missing_columns(kind, name, exc, data, context.fallback_time)

    def file_coverage(
        self, kind: str, name: str, data: bytes | OSError, modified: datetime
    ) -> tuple[FileCoverage, Shaped | None]:
        """What the index keeps of a file. Contact files are read for their times only (the
        values are shaped when a window wants the file: a history import indexes years of
        files to import one month); a file that cannot be read, and agent-status files (whose
        open segments need the whole row), are parsed whole, and returned."""
        if kind != "contacts":
            shaped = self.parse_file(kind, name, data, modified)
            return FileCoverage.of(shaped), shaped
        prepared = self._prepare(kind, name, data, modified)
        if isinstance(prepared, Shaped):  # unreadable: the whole file is one reject
            return FileCoverage.of(prepared), prepared
        raw, context = prepared
        try:
            first, last = shaping.contact_coverage(
                raw, self._section(kind), self._format(kind), context
            )
        except MissingColumnsError as exc:  # what shaping the file would raise as well
            shaped = self._missing_columns(kind, name, exc, data, context.fallback_time)
            return FileCoverage.of(shaped), shaped
        return FileCoverage(first, last, False, raw.table.num_rows, None), None

    def _prepare(
        self, kind: str, name: str, data: bytes | OSError, modified: datetime
    ) -> tuple[RawRows, ShapeContext] | Shaped:
        """The file's records ready to shape, or the whole file as one reject."""
        fmt = self._format(kind)
        delivered = pd.Timestamp(modified).tz_convert("UTC").floor("h")
        if isinstance(data, OSError):
            rule = f"cannot read the file: {data.strerror or data}"
            return _file_reject(kind, name, 1, rule, 0, delivered)
        try:
            rows, _ = read_rows(data, fmt)
        except FileProblemError as exc:
            return _file_reject(kind, name, exc.line, exc.rule, len(data), delivered)
        raw = RawRows(
            rows.table,
            f"{name}:",
            rows.lines,
            preset_rules={row: rule for row, (rule, _) in rows.malformed.items()},
            preset_json={
                row: json.dumps({"line": text}, ensure_ascii=False)
                for row, (_, text) in rows.malformed.items()
            },
        )
        context = ShapeContext(
            self.integration_id,
            self.timezone,
            self.interval_minutes,
            fallback_time=delivered,
            missing="reject",
        )
        return raw, context

    def _missing_columns(
        self, kind: str, name: str, exc: MissingColumnsError, data: bytes, delivered: pd.Timestamp
    ) -> Shaped:
        fmt = self._format(kind)
        rule = str(exc)
        found = exc.available
        if len(found) == 1 and any(d in found[0] for d in ",;\t|" if d != fmt.delimiter):
            rule += f" (one column only: is format.delimiter {fmt.delimiter!r} right?)"
        return _file_reject(kind, name, fmt.header_row or 1, rule, len(data), delivered)

    # -- one window ---------------------------------------------------------------------------
    def _extract(self, kind: str, start: datetime, end: datetime) -> Extract:
        section = self._section(kind)
        folder = self.folder()
        if not folder.is_dir():
            raise SourceError(
                f"integration {self.integration_id!r}: CSV folder {folder} does not exist or is "
                "not a folder (source.folder)"
            )
        fingerprint = self._fingerprint(kind)
        index = FileIndex(self.index_path()) if self.settings.use_index else None
        counts: Counter[str] = Counter()
        problems: list[str] = []
        deliveries: list[_Delivery] = []
        present: set[str] = set()
        now = time.time()

        def visit(path: Path, wait: bool) -> bool:
            """Index one file and keep what it holds for the window; False when another run
            is indexing it right now (come back with `wait=True`)."""
            try:
                stat = path.stat()
            except FileNotFoundError:
                return True
            name = path.relative_to(folder).as_posix()
            key = f"{kind}:{name}"
            present.add(key)
            if now - stat.st_mtime < self.settings.min_file_age_s:
                counts["too young"] += 1
                return True
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            shaped: Shaped | None = None
            if index is not None and wait:
                index.wait_for(key)  # until the run that claimed it has saved its entry
            entry = index.get(key) if index else None
            if entry is not None and entry.unchanged(stat.st_size, stat.st_mtime_ns, fingerprint):
                counts["known"] += 1
            elif (day := self.named_day(kind, name)) is not None:
                counts["named"] += 1  # its name says what it covers: nothing to read yet
                if index is not None and entry is not None:
                    self._drop_parsed(kind, entry)  # the file's previous version
                entry = _named_entry(name, day, stat, fingerprint)
                if index is not None:
                    index.put(key, entry)
            else:
                if index is not None and not wait:
                    if not index.claim(key):
                        return False
                    index.refresh()  # another run may have indexed it since we looked
                    known = index.get(key)
                    if known is not None and known.unchanged(
                        stat.st_size, stat.st_mtime_ns, fingerprint
                    ):
                        entry = known
                        counts["known"] += 1
                        return finish(path, name, stat, modified, entry, None)
                data = _read_bytes(path)
                digest = sha256_of(data) if isinstance(data, bytes) else "unreadable"
                if entry is not None and (entry.sha256, entry.fingerprint) == (digest, fingerprint):
                    counts["known"] += 1
                    if index is not None:  # kept rows are per modification time
                        self._drop_parsed(kind, entry)
                    entry = replace(entry, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
                else:
                    if index is None:  # every window parses every file anyway
                        shaped = self.parse_file(kind, name, data, modified)
                        coverage = FileCoverage.of(shaped)
                    else:
                        coverage, shaped = self.file_coverage(kind, name, data, modified)
                    counts["parsed"] += 1
                    if index is not None and entry is not None:
                        self._drop_parsed(kind, entry)  # the file's previous version
                    entry = _entry(coverage, stat, digest, fingerprint)
                    if shaped is None and entry.overlaps(start, end):
                        shaped = self.parse_file(kind, name, data, modified)  # rows wanted
                if index is not None:
                    index.put(key, entry)
                    if len(index.claims) >= CLAIMS_PER_SAVE:
                        index.save()  # and let a run waiting for these files go on
            return finish(path, name, stat, modified, entry, shaped)

        def finish(
            path: Path, name: str, stat, modified: datetime, entry: FileEntry, shaped
        ) -> bool:
            """Keep what an indexed file holds for the window."""
            counts["files"] += 1
            if not entry.overlaps(start, end):
                counts["skipped"] += 1
                return True
            if shaped is None and index is not None:
                shaped = self._load_parsed(kind, entry)
                counts["kept parsed"] += shaped is not None
            if shaped is None:
                shaped = self.parse_file(kind, name, _read_bytes(path), modified)
                counts["parsed"] += 1
                if index is not None and not entry.within(start, end):
                    self._store_parsed(kind, entry, shaped)  # other windows will want it
            window, _ = shaped.window(start, end)
            problems.extend(_file_problems(window, name))
            deliveries.append(_Delivery((stat.st_mtime_ns, name), window))
            return True

        paths = [
            p
            for p in sorted(folder.glob(section.glob))
            if p.is_file() and not p.name.startswith(".")
        ]
        busy = [path for path in paths if not visit(path, wait=False)]
        if index is not None:
            index.save()
        for path in busy:
            visit(path, wait=True)
        if index is not None:
            for gone in index.forget_missing(f"{kind}:", present):
                self._drop_parsed(kind, gone)
            index.save()
        frame, rejected, superseded = _combine(kind, deliveries)
        counts["superseded rows"] = superseded
        for problem in problems:
            dg.get_dagster_logger().warning(f"integration {self.integration_id!r}: {problem}")
        return Extract(frame, rejected, self._describe(kind, counts, problems, len(deliveries)))

    def _describe(self, kind: str, counts: Counter[str], problems: list[str], used: int) -> str:
        glob = self._section(kind).glob
        text = (
            f"csv {self.settings.folder}/{glob}: {counts['files']} file(s), {used} hold the "
            f"window; {counts['parsed']} parsed, {counts['known']} known from the index, "
            f"{counts['skipped']} hold only other hours"
        )
        if counts["named"]:
            text += f"; {counts['named']} indexed from their names (contacts.day_in_name)"
        if counts["kept parsed"]:
            text += f"; {counts['kept parsed']} read from the rows kept when they were parsed"
        if counts["too young"]:
            text += f"; {counts['too young']} still being written"
        if counts["superseded rows"]:
            text += f"; {counts['superseded rows']} row(s) superseded by newer files"
        if problems:
            text += "; unreadable: " + "; ".join(problems[:5])
        return text


def _as_parsed(table: pa.Table) -> pd.DataFrame:
    """Kept rows as parsing gave them: text that was kept in Arrow comes back in Arrow (pandas
    would restore it as Python strings)."""
    frame = table.to_pandas()
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.StringDtype) and dtype != STRING:
            frame[name] = pd.arrays.ArrowStringArray(table.column(name).combine_chunks())
    return frame


def _read_bytes(path: Path) -> bytes | OSError:
    """The file's bytes, or the error: an unreadable file is reported, never skipped."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return exc


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


def _file_reject(
    kind: str, name: str, line: int, rule: str, size: int, delivered: pd.Timestamp
) -> Shaped:
    """A file that cannot be read: one quarantined row naming it, in its delivery hour."""
    rejected = pd.DataFrame(
        {
            "source_ref": [f"{name}:{line}"],
            "row_json": [json.dumps({"file": name, "bytes": size, "problem": "whole file"})],
            "rules": [[f"file: {rule}"]],
            "partition_time": pd.to_datetime([delivered], utc=True),
        }
    )
    return Shaped(kind, empty_frame(kind), rejected)


def _file_problems(shaped: Shaped, name: str) -> list[str]:
    rules = shaped.rejected["rules"]
    return [
        f"{name}: {rule[0].removeprefix('file: ')}"
        for rule in rules
        if rule and str(rule[0]).startswith("file: ")
    ]


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
