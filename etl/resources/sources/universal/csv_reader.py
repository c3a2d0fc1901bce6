"""Reading a CSV file's records as text columns, in pieces of bounded size.

A drop folder may hold one file of hundreds of megabytes; an hourly import of it must not hold
the whole file, its text and its parsed columns in memory at once. The file is read in pieces
of about `PIECE_BYTES`, each cut after a line break outside quotes, and each piece becomes one
table of text columns named by the file's header, with the line each record starts on. The
caller shapes a piece and keeps what its window wants before the next piece is read.

A piece is parsed with pyarrow's multithreaded CSV reader when every record in it is one
physical line (the usual case), which gives exact line numbers cheaply. From the first piece
where that does not hold (a quoted line break, a blank line, a ragged row), the rest of the
file is read as one piece with Python's csv module, line by line, which gives exact line
numbers and per-line rules for ragged rows. UTF-8 files and files in a one-byte encoding
(cp1252, latin-1, ...) are read in pieces; a file in another encoding (UTF-16) is read whole.
"""

from __future__ import annotations

import codecs
import csv
import importlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field, field_validator

from etl.resources.sources.plumbing.shaping import ValueFormat

PIECE_BYTES = 1 << 22  # 4 MiB: about 80,000 records of a usual export
LINE_BREAK_BYTES = re.compile(rb"\r\n|\n|\r")
# A byte that is not whitespace to str.strip() when it is ASCII.
TEXT_BYTE = re.compile(rb"[^ \t\n\r\x0b\x0c\x1c-\x1f]")
BOMS = {codecs.BOM_UTF8: "utf-8", codecs.BOM_UTF16_LE: "utf-16", codecs.BOM_UTF16_BE: "utf-16"}


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


class FileProblemError(ValueError):
    """A whole file cannot be read; `line` is where the problem is."""

    def __init__(self, line: int, rule: str):
        super().__init__(rule)
        self.line = line
        self.rule = rule


@dataclass
class FileRows:
    """Records as text columns, the line each starts on, and ragged lines (by row)."""

    table: pa.Table
    lines: np.ndarray
    malformed: dict[int, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Header:
    """Column names (trimmed; a repeated name gets its position: `AHT (9)`), how many are
    named (trailing empty header fields come from trailing delimiters), and the names the
    header repeats, with their positions."""

    names: list[str]
    named: int
    repeated: dict[str, list[int]]


@dataclass
class Piece:
    rows: FileRows
    header: Header


def dialect(fmt: CsvFormat) -> dict:
    if fmt.quote_char:
        return {"delimiter": fmt.delimiter, "quotechar": fmt.quote_char, "doublequote": True}
    return {"delimiter": fmt.delimiter, "quoting": csv.QUOTE_NONE}


def header_of(fields: list[str]) -> Header:
    named = len(fields)
    while named and not fields[named - 1].strip():
        named -= 1
    names: list[str] = []
    positions: dict[str, list[int]] = {}
    for position, raw in enumerate(fields, start=1):
        name = raw.strip() or f"column_{position}"
        positions.setdefault(name, []).append(position)
        while name in names:
            name = f"{name} ({position})"
        names.append(name)
    repeated = {name: where for name, where in positions.items() if len(where) > 1}
    return Header(names, named, repeated)


@cache
def _one_byte(codec: str) -> bool:
    """Whether `codec` maps each byte to one character (cp1252, latin-1, ...), so that a
    piece cut after a line feed byte decodes on its own."""
    if codec in ("ascii", "iso8859-1", "latin-1"):
        return True
    try:
        module = importlib.import_module(f"encodings.{codec.replace('-', '_')}")
    except ImportError:
        return False
    table = getattr(module, "decoding_table", None)
    return isinstance(table, str) and len(table) == 256


def read_pieces(
    chunks: Iterable[bytes], fmt: CsvFormat, piece_bytes: int = PIECE_BYTES
) -> Iterator[Piece]:
    """A file's records, piece by piece (at least one piece, maybe without rows). Raises
    `FileProblemError` for a file that cannot be read (encoding, empty, no header), possibly
    after some pieces: the caller drops what it took from them."""
    return _Reader(fmt, piece_bytes).pieces(iter(chunks))


def read_rows(
    data: bytes, fmt: CsvFormat, piece_bytes: int = PIECE_BYTES
) -> tuple[FileRows, list[str]]:
    """A whole file's records as one table (its pieces put together)."""
    pieces = list(read_pieces([data], fmt, piece_bytes))
    names = pieces[0].header.names
    pieces = [p for p in pieces if p.rows.table.num_rows] or pieces[:1]
    tables, lines, malformed = [], [], {}
    for piece in pieces:
        before = sum(t.num_rows for t in tables)
        malformed.update({before + row: p for row, p in piece.rows.malformed.items()})
        tables.append(piece.rows.table)
        lines.append(piece.rows.lines)
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    return FileRows(table, np.concatenate(lines), malformed), names


class _Reader:
    """One pass over a file: where the current piece starts (byte offset, line), the header."""

    def __init__(self, fmt: CsvFormat, piece_bytes: int):
        self.fmt = fmt
        self.piece_bytes = piece_bytes
        self.codec = codecs.lookup(fmt.encoding).name
        self.utf8 = self.codec in ("utf-8", "utf-8-sig")
        self.in_pieces = self.utf8 or _one_byte(self.codec)
        self.quote = (fmt.quote_char or "").encode("utf-8" if self.utf8 else self.codec, "replace")
        self.offset = 0  # bytes of the file before the current piece
        self.line = 1  # the line the current piece's records start on
        self.header: Header | None = None

    def pieces(self, chunks: Iterator[bytes]) -> Iterator[Piece]:
        pending: list[bytes] = []
        size = 0
        first = True
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if not self.in_pieces or size < self.piece_bytes:
                continue
            buffer = b"".join(pending)
            start = 0
            while len(buffer) - start >= self.piece_bytes:
                cut = self._cut(buffer, start, first)
                if cut is None:
                    break
                piece = self._piece(buffer[start:cut], first, last=False)
                if isinstance(piece, bytes):  # Arrow's reader cannot take it: Python's reads on
                    yield self._slow(piece, b"".join([buffer[cut:], *chunks]))
                    return
                yield piece
                first = False
                start = cut
            rest = buffer[start:]
            pending, size = [rest], len(rest)
        buffer = b"".join(pending)
        piece = self._piece(buffer, first, last=True)
        yield self._slow(piece, b"") if isinstance(piece, bytes) else piece

    def _cut(self, buffer: bytes, start: int, first: bool) -> int | None:
        """Where to end the piece that starts at `start`: after the last line feed within
        `piece_bytes` (else the first after), and on until that line feed is outside quotes
        (an even number of quote characters before it) and the header is complete."""
        cut = buffer.rfind(b"\n", start, start + self.piece_bytes) + 1
        if cut == 0:
            cut = buffer.find(b"\n", start + self.piece_bytes) + 1
        if cut == 0:
            return None
        lines = buffer.count(b"\n", start, cut)
        quotes = buffer.count(self.quote, start, cut) if self.quote else 0
        while (first and lines < max(self.fmt.header_row, 1)) or quotes % 2:
            after = buffer.find(b"\n", cut) + 1
            if after == 0:
                return None
            lines += 1
            quotes += buffer.count(self.quote, cut, after) if self.quote else 0
            cut = after
        return cut

    # -- one piece: its UTF-8 bytes, the header, the records ----------------------------------
    def _utf8(self, data: bytes, first: bool) -> bytes:
        """The piece as UTF-8 (the file's own bytes when it is UTF-8); a problem is named with
        the file's line and byte offset."""
        start = 0
        if first:
            bom_codec = "utf-8-sig" if self.utf8 else self.codec
            for bom, name in BOMS.items():
                if data.startswith(bom) and not bom_codec.startswith(name):
                    raise FileProblemError(
                        1,
                        f"starts with a {name} byte order mark but format.encoding is "
                        f"{self.fmt.encoding}",
                    )
            if self.utf8 and data.startswith(codecs.BOM_UTF8):
                start = len(codecs.BOM_UTF8)
        if self.in_pieces and (nul := data.find(b"\x00")) >= 0:
            raise self._nul(self.line + data.count(b"\n", 0, nul))
        if self.utf8 and data.isascii():
            return data[start:]
        try:
            text = data[start:].decode("utf-8" if self.utf8 else self.codec)
        except UnicodeDecodeError as exc:
            at = start + exc.start
            bad = data[at : start + exc.end].hex(" ")
            raise FileProblemError(
                self.line + data.count(b"\n", 0, at),
                f"not valid {self.fmt.encoding}: byte(s) {bad} at offset {self.offset + at}; "
                "check format.encoding",
            ) from None
        if self.utf8:
            return data[start:]
        if "\x00" in text:
            raise self._nul(self.line + text[: text.index("\x00")].count("\n"))
        return text.encode("utf-8")

    def _nul(self, line: int) -> FileProblemError:
        return FileProblemError(
            line,
            f"contains NUL characters: not {self.fmt.encoding} text (UTF-16?); check "
            "format.encoding",
        )

    def _body(self, data: bytes, first: bool, last: bool) -> tuple[bytes, int]:
        """The piece's UTF-8 bytes after the header (read from the first piece), and the line
        its first record starts on."""
        text = self._utf8(data, first)
        if not first:
            return text, self.line
        if last and _blank(text):
            raise FileProblemError(1, "empty file: no header and no rows")
        if self.fmt.header_row == 0:
            return text, 1
        position = 0
        for number in range(1, self.fmt.header_row + 1):
            match = LINE_BREAK_BYTES.search(text, position)
            line_end = match.start() if match else len(text)
            if number == self.fmt.header_row:
                header_text = text[position:line_end].decode("utf-8")
                if not header_text.strip():
                    raise FileProblemError(number, f"line {number} (format.header_row) is empty")
                self.header = header_of(next(csv.reader([header_text], **dialect(self.fmt))))
                return (text[match.end() :] if match else b""), number + 1
            if match is None:
                raise FileProblemError(
                    number, f"file has {number} line(s); format.header_row is {self.fmt.header_row}"
                )
            position = match.end()
        raise AssertionError("unreachable")

    def _piece(self, data: bytes, first: bool, last: bool) -> Piece | bytes:
        """The piece's records, or its UTF-8 body when Arrow's reader cannot give them line by
        line (then `_slow` reads it with the rest of the file)."""
        body, self.line = self._body(data, first, last)
        self.offset += len(data)
        end = len(body)
        while end and body[end - 1] in b"\r\n":
            end -= 1
        if self.header is None:  # no header row: columns are named by position
            text = io.StringIO(body[:end].decode("utf-8"), newline="")
            names = [
                str(i) for i in range(1, len(next(csv.reader(text, **dialect(self.fmt)), [])) + 1)
            ]
            self.header = Header(names, len(names), {})
        if _blank(body[:end]):
            rows = FileRows(_empty_table(self.header.names), np.array([], dtype=np.int64))
        else:
            lines = body.count(b"\n", 0, end) + 1
            fast = _fast_rows(
                pa.py_buffer(body).slice(0, end), lines, self.header.names, self.fmt, self.line
            )
            if fast is None:
                return body
            rows = _without_empty_extras(fast, self.header)
        self.line += body.count(b"\n")
        return Piece(rows, self.header)

    def _slow(self, body: bytes, rest: bytes) -> Piece:
        """Python's reader on a piece's UTF-8 body and every byte of the file after it."""
        line = self.line
        self.line += body.count(b"\n")
        tail = self._utf8(rest, first=False) if rest else b""
        text = (body + tail).decode("utf-8").rstrip("\r\n")
        header = self.header
        assert header is not None
        rows = _slow_rows(text, header.names, header.named, self.fmt, line)
        return Piece(_without_empty_extras(rows, header), header)


def _without_empty_extras(rows: FileRows, header: Header) -> FileRows:
    """Columns after the last header name come from trailing delimiters: dropped when empty."""
    for name in header.names[header.named :]:
        if _all_blank(rows.table.select([name])).all():
            rows.table = rows.table.drop_columns([name])
    return rows


def _blank(data: bytes) -> bool:
    """Whether the UTF-8 bytes hold no text (whitespace to str.strip() only)."""
    found = TEXT_BYTE.search(data)
    if found is None:
        return True
    return data[found.start()] >= 0x80 and not data.decode("utf-8").strip()


def _empty_table(names: list[str]) -> pa.Table:
    return pa.table({name: pa.array([], pa.string()) for name in names})


def _fast_rows(
    body: pa.Buffer, physical_lines: int, names: list[str], fmt: CsvFormat, first_line: int
) -> FileRows | None:
    """pyarrow's reader on UTF-8 text after the header, when every record is exactly one of
    its `physical_lines`; None otherwise."""
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
    return FileRows(table, lines)


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
    reader = csv.reader(io.StringIO(body, newline=""), **dialect(fmt))
    consumed = 0
    try:
        for fields in reader:
            line = first_line + consumed
            consumed = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # a blank line
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
    return FileRows(table, np.asarray(lines, dtype=np.int64), malformed)
