"""The CSV drop-folder source on real files: every format option, DST, bad files, the file
index and re-delivered files; contacts end to end through the real asset path."""

from __future__ import annotations

import codecs
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from etl.config import ConfigError, parse_integrations
from etl.resources.sources import SourceError
from etl.resources.sources.universal import csv_files, csv_reader
from etl.resources.sources.universal.csv_files import CsvSource
from tests.conftest import make_integration
from tests.helpers import definitions, import_range

# 08:00-10:00 in Berlin (CET) on Monday 2026-11-16.
WINDOW = (datetime(2026, 11, 16, 7, tzinfo=UTC), datetime(2026, 11, 16, 9, tzinfo=UTC))
GERMAN = {
    "delimiter": ";",
    "decimal": ",",
    "encoding": "cp1252",
    "time": "local",
    "date_format": "%d.%m.%Y",
    "duration_unit": "hms",
}
GERMAN_COLUMNS = {
    "Warteschlange": "external_queue_id",
    "Kanal": "channel",
    "Datum": "interval_date",
    "Uhrzeit": "interval_time",
    "Angeboten": "offered",
    "Angenommen": "answered",
    "Abgebrochen": "abandoned",
    "AHT": "handle_time",
}
GERMAN_HEADER = "Warteschlange;Kanal;Datum;Uhrzeit;Angeboten;Angenommen;Abgebrochen;AHT"
CHANNELS = {"Anrufe": "calls", "E-Mail": "emails"}
PLAIN_COLUMNS = [
    "external_queue_id",
    "channel",
    "interval_start",
    "offered",
    "answered",
    "abandoned",
    "handle_time",
]


def write(path: Path, text: str, encoding: str = "utf-8", mtime: datetime | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def german(*rows: str, header: str = GERMAN_HEADER, newline: str = "\r\n") -> str:
    return newline.join([header, *rows]) + newline


def csv_integration(folder: Path, state: Path, **source):
    fields = {
        "folder": str(folder),
        "state_dir": str(state),
        "format": GERMAN,
        "contacts": {"columns": GERMAN_COLUMNS, "channels": CHANNELS, "averages": True},
        **source,
    }
    return make_integration(
        id="drop_csv",
        vendor="csv",
        delivery="on_premise",
        interval_minutes=15,
        timezone="Europe/Berlin",
        history_start="2026-03-01",
        source=fields,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(autouse=True)
def indexed_spans_match_whole_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file a test here indexes from its times alone must span what a whole parse of it
    spans; otherwise an import would skip a file that holds its hours."""
    checked: list[str] = []
    read_file = CsvSource.read_file

    def checking(self: CsvSource, kind: str, name: str, path: Path, seen, **options):
        reading = read_file(self, kind, name, path, seen, **options)
        if not options["shape"] and reading.problem is None:
            whole = read_file(self, kind, name, path, seen, shape=True)
            assert reading.coverage is not None
            assert whole.coverage is not None
            spans = (reading.coverage.first, reading.coverage.last, reading.coverage.open_ended)
            assert spans == (whole.coverage.first, whole.coverage.last, False), name
            assert spans == whole.shaped.coverage(), name
            assert reading.coverage.rows == whole.coverage.rows, name
            checked.append(name)
        return reading

    monkeypatch.setattr(CsvSource, "read_file", checking)
    return checked


def source(folder: Path, state: Path, **settings) -> CsvSource:
    return CsvSource.from_integration(csv_integration(folder, state, **settings))


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# -- end to end -----------------------------------------------------------------------------
def test_german_export_lands_with_sums_and_quarantine(folder, state, settings, warehouse, instance):
    write(
        folder / "export_2026-11-16.csv",
        german(
            "Büro Süd;Anrufe;16.11.2026;08:00;12;10;2;00:04:30",
            "Büro Süd;E-Mail;16.11.2026;08:00;5;5;0;00:12:00",
            "Büro Süd;Anrufe;16.11.2026;08:15;zwölf;10;2;00:04:30",  # line 4: not a number
            "Büro Süd;Anrufe;16.11.2026;09:45;7;6;1;0:05:10,5",
            "Büro Süd;Anrufe;16.11.2026;10:00;7;6;1;00:05:00",  # next window
        ),
        encoding="cp1252",
    )
    integration = csv_integration(folder, state).model_copy(update={"max_rejected_share": 0.5})
    result = import_range(definitions(settings, integration), instance, integration.id, *WINDOW)
    assert result.success

    stored = warehouse.query(
        "SELECT external_queue_id, channel, interval_start, offered, answered, abandoned,"
        " handle_time_s FROM contact_intervals ORDER BY interval_start, channel"
    )
    assert list(stored["external_queue_id"]) == ["Büro Süd"] * 3
    assert list(stored["channel"]) == ["calls", "emails", "calls"]
    assert list(stored["interval_start"]) == [
        utc("2026-11-16 07:00"),
        utc("2026-11-16 07:00"),
        utc("2026-11-16 08:45"),
    ]
    assert list(stored["offered"]) == [12, 5, 7]
    # AHT x answered: 270 s x 10, 720 s x 5, 310.5 s x 6.
    assert list(stored["handle_time_s"]) == [2700.0, 3600.0, 1863.0]
    rejected = warehouse.query(
        "SELECT source_ref, rules, row_json, partition_key FROM rejected_rows"
    )
    assert list(rejected["source_ref"]) == ["export_2026-11-16.csv:4"]
    assert list(rejected["rules"][0]) == [
        "offered ('Angeboten'): not a number (decimal separator ',')"
    ]
    assert json.loads(rejected["row_json"][0])["Angeboten"] == "zwölf"
    assert list(rejected["partition_key"]) == ["2026-11-16-07:00"]


def test_redelivered_file_replaces_its_intervals(folder, state, settings, warehouse, instance):
    path = folder / "export.csv"
    write(path, german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"), "cp1252")
    integration = csv_integration(folder, state)
    defs = definitions(settings, integration)
    assert import_range(defs, instance, integration.id, *WINDOW).success
    write(path, german("Q;Anrufe;16.11.2026;08:00;20;18;2;00:05:00"), "cp1252")
    assert import_range(defs, instance, integration.id, *WINDOW).success
    stored = warehouse.query("SELECT offered, answered, handle_time_s FROM contact_intervals")
    assert stored.to_dict("records") == [{"offered": 20, "answered": 18, "handle_time_s": 5400.0}]


def test_corrected_file_under_a_new_name_wins(folder, state):
    old = datetime(2026, 11, 16, 9, 5, tzinfo=UTC)
    write(
        folder / "export_v1.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00",
            "Q;Anrufe;16.11.2026;08:15;x;9;1;00:05:00",
            "R;Anrufe;16.11.2026;08:15;4;4;0;00:05:00",
        ),
        "cp1252",
        mtime=old,
    )
    write(
        folder / "export_v2.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;11;9;1;00:05:00", "Q;Anrufe;16.11.2026;08:15;12;9;1;00:05:00"
        ),
        "cp1252",
        mtime=old + timedelta(minutes=30),
    )
    extract = source(folder, state).contacts(*WINDOW)
    frame = extract.frame.sort_values(["external_queue_id", "interval_start"])
    assert list(frame["offered"]) == [11.0, 12.0, 4.0]  # R only in v1: kept
    assert list(frame["source_ref"]) == ["export_v2.csv:2", "export_v2.csv:3", "export_v1.csv:4"]
    assert extract.rejected.empty  # v1's bad line 3 is corrected by v2
    assert "2 row(s) superseded by newer files" in extract.description


# -- format options -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("configured", "written", "prefix"),
    [
        ("utf-8", "utf-8", b""),
        ("utf-8", "utf-8", b"\xef\xbb\xbf"),  # UTF-8 with byte order mark
        ("cp1252", "cp1252", b""),
        ("utf-16", "utf-16", b""),  # Python writes the byte order mark
    ],
)
def test_encodings(folder, state, configured, written, prefix):
    text = german("Büro Süd ;Anrufe;16.11.2026;08:00;3;3;0;00:01:00", newline="\n")
    (folder / "a.csv").write_bytes(prefix + text.encode(written))
    extract = source(folder, state, format={**GERMAN, "encoding": configured}).contacts(*WINDOW)
    assert list(extract.frame["external_queue_id"]) == ["Büro Süd "]  # exactly as delivered
    assert extract.rejected.empty


def test_delimiter_quotes_decimal_and_thousands(folder, state):
    write(
        folder / "a.csv",
        "queue|channel|start|offered|answered|abandoned|handle\n"
        "'Sales|EU'|calls|2026-11-16T08:00:00+01:00|1.200|1.100|50|330.000,5\n"
        "'It''s me'|chats|2026-11-16T07:15:00Z|3|3|0|90\n",
    )
    extract = source(
        folder,
        state,
        format={
            "delimiter": "|",
            "quote_char": "'",
            "decimal": ",",
            "thousands": ".",
            "time": "iso",
        },
        contacts={
            "columns": {
                "queue": "external_queue_id",
                "start": "interval_start",
                "handle": "handle_time",
            }
        },
    ).contacts(*WINDOW)
    frame = extract.frame
    assert list(frame["external_queue_id"]) == ["Sales|EU", "It's me"]
    assert list(frame["interval_start"]) == [utc("2026-11-16 07:00"), utc("2026-11-16 07:15")]
    assert list(frame["offered"]) == [1200.0, 3.0]
    assert list(frame["handle_time_s"]) == [330000.5, 90.0]


def test_tab_delimiter_without_quoting(folder, state):
    write(
        folder / "a.tsv",
        "\t".join(PLAIN_COLUMNS) + '\n"Q" 5" screens\tcalls\t2026-11-16T07:00Z\t1\t1\t0\t9\n',
    )
    extract = source(
        folder,
        state,
        format={"delimiter": "\t", "quote_char": None},
        contacts={"glob": "*.tsv"},
    ).contacts(*WINDOW)
    assert list(extract.frame["external_queue_id"]) == ['"Q" 5" screens']  # quotes are data


def test_header_row_after_a_preamble_and_no_header(folder, state):
    write(
        folder / "report.csv",
        "Interval report\nExported 2026-11-16\n" + ",".join(PLAIN_COLUMNS) + "\n"
        "A,calls,2026-11-16T07:00Z,1,1,0,x\n",
    )
    extract = source(folder, state, format={"header_row": 3}, contacts={}).contacts(*WINDOW)
    assert list(extract.rejected["source_ref"]) == ["report.csv:4"]
    assert extract.rejected["rules"][0] == ["handle_time: not a duration in seconds"]

    write(folder / "report.csv", "A,calls,2026-11-16T07:00Z,1,1,0,30\n")
    numbered = {str(i + 1): name for i, name in enumerate(PLAIN_COLUMNS)}
    extract = source(
        folder, state, format={"header_row": 0}, contacts={"columns": numbered}
    ).contacts(*WINDOW)
    assert list(extract.frame["source_ref"]) == ["report.csv:1"]
    assert list(extract.frame["handle_time_s"]) == [30.0]


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ({"time": "iso"}, "2026-11-16T08:30:00+01:00", "2026-11-16 07:30"),
        ({"time": "iso"}, "2026-11-16T07:30:00Z", "2026-11-16 07:30"),
        ({"time": "utc"}, "2026-11-16 07:30", "2026-11-16 07:30"),
        ({"time": "local"}, "2026-11-16 08:30", "2026-11-16 07:30"),
        (
            {"time": "local", "datetime_format": "%d/%m/%Y %I:%M %p"},
            "16/11/2026 08:30 AM",
            "2026-11-16 07:30",
        ),
        (
            {"time": "epoch"},
            str(int(datetime(2026, 11, 16, 7, 30, tzinfo=UTC).timestamp())),
            "2026-11-16 07:30",
        ),
    ],
)
def test_time_formats(folder, state, fmt, value, expected):
    write(folder / "a.csv", ",".join(PLAIN_COLUMNS) + f"\nA,calls,{value},1,1,0,60\n")
    extract = source(folder, state, format=fmt, contacts={}).contacts(*WINDOW)
    assert list(extract.frame["interval_start"]) == [utc(expected)]


def test_iso_time_without_offset_is_rejected(folder, state):
    write(
        folder / "a.csv",
        ",".join(PLAIN_COLUMNS) + "\nA,calls,2026-11-16T07:30,1,1,0,60\n",
        mtime=datetime(2026, 11, 16, 7, 40, tzinfo=UTC),
    )
    extract = source(folder, state, format={"time": "iso"}, contacts={}).contacts(*WINDOW)
    assert extract.frame.empty
    assert extract.rejected["rules"][0] == [
        "interval_start: not an ISO 8601 time with UTC offset",
        "time unreadable: placed in the hour the file was delivered (its modification time)",
    ]


@pytest.mark.parametrize(
    ("unit", "value", "averages", "expected"),
    [
        ("s", "125.5", False, 125.5),
        ("ms", "125500", False, 125.5),
        ("hms", "00:02:05", False, 125.0),
        ("hms", "1:00:00", False, 3600.0),
        ("s", "50", True, 200.0),  # average per answered contact x 4 answered
        ("hms", "00:00:50", True, 200.0),
    ],
)
def test_duration_units_and_averages(folder, state, unit, value, averages, expected):
    write(
        folder / "a.csv", ",".join(PLAIN_COLUMNS) + f"\nA,calls,2026-11-16T07:30Z,5,4,1,{value}\n"
    )
    extract = source(
        folder,
        state,
        format={"duration_unit": unit},
        contacts={"averages": averages},
    ).contacts(*WINDOW)
    assert list(extract.frame["handle_time_s"]) == [expected]


def test_channel_constant_and_optional_durations(folder, state):
    write(
        folder / "a.csv",
        "queue,start,offered,answered,abandoned,aht,talk,hold,acw,sl\n"
        "Q,2026-11-16T07:30Z,5,4,1,100,70,10,20,3\n",
    )
    extract = source(
        folder,
        state,
        format={},
        contacts={
            "channel": "calls",
            "averages": True,
            "columns": {
                "queue": "external_queue_id",
                "start": "interval_start",
                "aht": "handle_time",
                "talk": "talk_time",
                "hold": "hold_time",
                "acw": "acw_time",
                "sl": "answered_in_sl",
            },
        },
    ).contacts(*WINDOW)
    row = extract.frame.iloc[0]
    assert row["channel"] == "calls"
    assert (row["handle_time_s"], row["talk_time_s"], row["hold_time_s"], row["acw_time_s"]) == (
        400.0,
        280.0,
        40.0,
        80.0,
    )
    assert row["answered_in_sl"] == 3


# -- DST ------------------------------------------------------------------------------------
SPRING = (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 3, tzinfo=UTC))
FALL = (datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC))


def test_nonexistent_local_time_is_rejected_with_reason(folder, state):
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;29.03.2026;01:45;1;1;0;00:01:00",
            "Q;Anrufe;29.03.2026;02:15;1;1;0;00:01:00",
            "Q;Anrufe;29.03.2026;03:00;1;1;0;00:01:00",
        ),
        "cp1252",
    )
    extract = source(folder, state).contacts(*SPRING)
    assert list(extract.frame["interval_start"]) == [
        utc("2026-03-29 00:45"),
        utc("2026-03-29 01:00"),
    ]
    assert list(extract.rejected["source_ref"]) == ["a.csv:3"]
    assert extract.rejected["rules"][0] == [
        "interval_start ('Datum' + 'Uhrzeit'): local time does not exist in Europe/Berlin "
        "(skipped when clocks went forward)"
    ]
    assert list(extract.rejected["partition_time"]) == [utc("2026-03-29 01:00")]


FALL_ROWS = (
    "Q;Anrufe;25.10.2026;02:00;1;1;0;00:01:00",
    "Q;Anrufe;25.10.2026;02:45;2;2;0;00:01:00",
    "Q;Anrufe;25.10.2026;02:00;3;3;0;00:01:00",
    "Q;Anrufe;25.10.2026;02:45;4;4;0;00:01:00",
)


def test_ambiguous_local_time_is_rejected_unless_configured(folder, state):
    write(folder / "a.csv", german(*FALL_ROWS), "cp1252")
    extract = source(folder, state).contacts(*FALL)
    assert extract.frame.empty
    assert list(extract.rejected["source_ref"]) == ["a.csv:2", "a.csv:3", "a.csv:4", "a.csv:5"]
    assert extract.rejected["rules"][0] == [
        "interval_start ('Datum' + 'Uhrzeit'): local time is ambiguous in Europe/Berlin (occurs "
        "twice when clocks go back); set format.ambiguous_times to offset or order"
    ]


def test_ambiguous_local_time_resolved_by_file_order(folder, state):
    write(folder / "a.csv", german(*FALL_ROWS), "cp1252")
    extract = source(folder, state, format={**GERMAN, "ambiguous_times": "order"}).contacts(*FALL)
    frame = extract.frame
    assert list(frame["offered"]) == [1.0, 2.0, 3.0, 4.0]
    assert list(frame["interval_start"]) == [  # first occurrence CEST, second CET
        utc("2026-10-25 00:00"),
        utc("2026-10-25 00:45"),
        utc("2026-10-25 01:00"),
        utc("2026-10-25 01:45"),
    ]


def test_ambiguous_local_time_resolved_by_offset_column(folder, state):
    header = GERMAN_HEADER + ";Offset"
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;25.10.2026;02:00;3;3;0;00:01:00;+01:00",
            "Q;Anrufe;25.10.2026;02:00;1;1;0;00:01:00;+02:00",
            "Q;Anrufe;25.10.2026;02:15;1;1;0;00:01:00;+05:00",  # wrong for Berlin
            "Q;Anrufe;25.10.2026;02:30;1;1;0;00:01:00;",  # no offset: still ambiguous
            header=header,
        ),
        "cp1252",
    )
    extract = source(
        folder,
        state,
        format={**GERMAN, "ambiguous_times": "offset"},
        contacts={
            "columns": {**GERMAN_COLUMNS, "Offset": "utc_offset"},
            "channels": CHANNELS,
            "averages": True,
        },
    ).contacts(*FALL)
    assert list(extract.frame["interval_start"]) == [
        utc("2026-10-25 01:00"),
        utc("2026-10-25 00:00"),
    ]
    rules = dict(zip(extract.rejected["source_ref"], extract.rejected["rules"], strict=True))
    assert rules["a.csv:4"] == [
        "interval_start ('Datum' + 'Uhrzeit'): UTC offset does not match Europe/Berlin at that "
        "local time"
    ]
    assert "local time is ambiguous" in rules["a.csv:5"][0]


# -- bad files ------------------------------------------------------------------------------
DELIVERED = datetime(2026, 11, 16, 7, 50, tzinfo=UTC)  # inside WINDOW: bad files show here


def good_file(folder: Path) -> None:
    write(folder / "good.csv", german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"), "cp1252")


@pytest.mark.parametrize(
    ("content", "encoding", "problem"),
    [
        (
            german(
                "Q;Anrufe;16.11.2026;08:00;1;1;0;00:01:00",
                "Büro;Anrufe;16.11.2026;08:15;1;1;0;00:01:00",
            ),
            "utf-8",
            "line 3: not valid cp1252: byte(s) 81",
        ),
        ("", "utf-8", "empty file: no header and no rows"),
        (
            german("Q;Anrufe;16.11.2026;08:00;1;1;0;00:01:00"),
            "utf-16",
            "starts with a utf-16 byte order mark but format.encoding is cp1252",
        ),
        ("Warteschlange,Kanal,Datum\nQ,Anrufe,16.11.2026\n", "utf-8", "no column(s)"),
    ],
    ids=["wrong-encoding", "empty", "utf16-as-cp1252", "wrong-delimiter"],
)
def test_unreadable_file_fails_the_hour_it_was_delivered_and_others_load(
    folder, state, content, encoding, problem
):
    """A file whose times cannot be read at all: what it holds is unknown, so the hour it was
    delivered fails (retried until it is fixed or removed); every other hour loads."""
    write(folder / "good.csv", german("Q;Anrufe;16.11.2026;09:15;10;9;1;00:05:00"), "cp1252")
    data = content.encode(encoding)
    if encoding == "utf-8" and "Büro" in content:
        data = data.replace("ü".encode(), b"\x81")  # a byte cp1252 does not define
    (folder / "bad.csv").write_bytes(data)
    os.utime(folder / "bad.csv", (DELIVERED.timestamp(), DELIVERED.timestamp()))
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.frame["source_ref"]) == ["good.csv:2"]
    assert extract.rejected.empty
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 08:00"))]
    reason = extract.failed[0].reason
    assert reason.startswith(f"bad.csv: {problem}")
    assert reason.endswith(
        "(what it holds is unknown: the hour it was delivered, 2026-11-16 07:00 UTC, fails "
        "until it is fixed or removed)"
    )
    assert "1 cannot be read" in extract.description


def test_unreadable_file_that_held_rows_fails_their_hours_too(folder, state):
    path = write(folder / "a.csv", german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"), "cp1252")
    csv_source = source(folder, state)
    assert len(csv_source.contacts(*WINDOW).frame) == 1
    write(
        path,
        german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"),
        "utf-16",
        mtime=datetime(2026, 11, 20, 10, 40, tzinfo=UTC),
    )  # rewritten in another encoding
    extract = csv_source.contacts(*WINDOW)
    assert extract.frame.empty
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 08:00"))]


def test_wrong_delimiter_hint(folder, state):
    write(folder / "bad.csv", "Warteschlange,Kanal\nQ,Anrufe\n", mtime=DELIVERED)
    reason = source(folder, state).contacts(*WINDOW).failed[0].reason
    assert "(one column only: is format.delimiter ';' right?)" in reason


def test_missing_value_column_rejects_each_row_in_its_partition(folder, state):
    header = GERMAN_HEADER.replace(";Abgebrochen", "")
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;1;1;00:01:00",
            "Q;Anrufe;16.11.2026;09:30;1;1;00:01:00",
            header=header,
        ),
        "cp1252",
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert extract.frame.empty
    assert list(extract.rejected["source_ref"]) == ["a.csv:2", "a.csv:3"]
    assert extract.rejected["rules"][0] == ["missing column(s) 'Abgebrochen' (abandoned)"]
    assert list(extract.rejected["partition_time"]) == [
        utc("2026-11-16 07:00"),
        utc("2026-11-16 08:30"),
    ]


def test_unparsable_dates_are_quarantined_by_line(folder, state):
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;1;1;0;00:01:00",
            "Q;Anrufe;31.11.2026;08:15;1;1;0;00:01:00",
            "Q;Anrufe;16.11.2026;8 Uhr;1;1;0;00:01:00",
            "Q;Anrufe;16.11.2026;08:30;1;1;0;00:01:00",
        ),
        "cp1252",
        mtime=datetime(2026, 11, 16, 8, 5, tzinfo=UTC),
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.frame["source_ref"]) == ["a.csv:2", "a.csv:5"]
    assert list(extract.rejected["source_ref"]) == ["a.csv:3", "a.csv:4"]
    expected = (
        "interval_start ('Datum' + 'Uhrzeit'): not a date and time in format %d.%m.%Y HH:MM[:SS]"
    )
    placed = "time unreadable: placed in the hour the file was delivered (its modification time)"
    assert list(extract.rejected["rules"]) == [[expected, placed], [expected, placed]]
    # Where a row's own time is unreadable, it belongs to the hour the file was delivered.
    assert list(extract.rejected["partition_time"]) == [utc("2026-11-16 08:00")] * 2


def test_header_only_file_is_no_rows_and_no_error(folder, state):
    write(folder / "a.csv", german(), "cp1252", mtime=DELIVERED)
    extract = source(folder, state).contacts(*WINDOW)
    assert extract.frame.empty
    assert extract.rejected.empty
    assert list(extract.frame.columns[:4]) == [
        "integration_id",
        "external_queue_id",
        "channel",
        "interval_start",
    ]


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_line_endings(folder, state, newline):
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;1;1;0;00:01:00",
            "Q;Anrufe;16.11.2026;08:15;x;1;0;00:01:00",
            "Q;Anrufe;16.11.2026;08:30;1;1;0;00:01:00",
            newline=newline,
        ),
        "cp1252",
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.frame["source_ref"]) == ["a.csv:2", "a.csv:4"]
    assert list(extract.rejected["source_ref"]) == ["a.csv:3"]


# Files read in pieces: every layout the reader knows, cut into pieces of every size.
READER_FILES = {
    "plain": (b"queue,offered\nQ1,1\nQ2,2\n", "utf-8"),
    "byte order mark and CRLF": (codecs.BOM_UTF8 + b"queue,offered\r\nQ1,1\r\nQ2,2\r\n", "utf-8"),
    "a line of empty fields": (b"queue,offered\nQ1,1\n ,\nQ2,2\n\n\n", "utf-8"),
    "trailing delimiters": (b"queue,offered,\nQ1,1,\nQ2,2,\n", "utf-8"),
    "non-ASCII text": ("queue,offered\nW\u00e4rme,1\n\u00e9,2\n".encode(), "utf-8"),
    "cp1252 text": ("queue;offered\r\nW\u00e4rme;1\r\n\u00e9;2\r\n".encode("cp1252"), "cp1252"),
    "utf-16 text": ("queue,offered\nW\u00e4rme,1\n".encode("utf-16"), "utf-16"),
    "header only": (b"queue,offered\n", "utf-8"),
    "a body blank only to Unicode": ("queue,offered\n\u00a0\n".encode(), "utf-8"),
    "an empty line": (b"queue,offered\nQ1,1\n\nQ2,2\n", "utf-8"),
    "a quoted line break": (b'queue,offered\n"Q\n1",1\nQ2,2\n', "utf-8"),
    "a quoted line break later on": (
        b"queue,offered\n" + b"Q,1\n" * 9 + b'"Q\n1",1\n' + b"Q,2\n" * 9,
        "utf-8",
    ),
    "a ragged line": (b"queue,offered\nQ1,1,9\nQ2,2\n", "utf-8"),
    "invalid UTF-8": (b"queue,offered\nQ1,1\nQ\xff,2\n", "utf-8"),
    "a NUL character": (b"queue,offered\nQ1,1\x00\n", "utf-8"),
    "CR line ends": (b"queue,offered\rQ1,1\rQ2,2\r", "utf-8"),
    "a header named twice": (b"queue,offered,offered\nQ1,1,2\n", "utf-8"),
}


def read(data: bytes, encoding: str = "utf-8", piece_bytes: int = 1 << 24) -> tuple:
    """What `read_rows` gives: the rows and where they come from, or the file's problem."""
    fmt = csv_files.CsvFormat(encoding=encoding, delimiter=";" if encoding == "cp1252" else ",")
    try:
        rows, names = csv_reader.read_rows(data, fmt, piece_bytes)
    except csv_reader.FileProblemError as exc:
        return exc.line, exc.rule
    return rows.table.to_pydict(), list(rows.lines), rows.malformed, names


@pytest.mark.parametrize("name", READER_FILES)
def test_a_file_read_in_pieces_reads_as_a_whole(name):
    data, encoding = READER_FILES[name]
    whole = read(data, encoding)
    for piece_bytes in (1, 2, 3, 5, 8, 13, 21):
        assert read(data, encoding, piece_bytes) == whole, piece_bytes


def test_reader_rows_and_problems():
    assert read(READER_FILES["byte order mark and CRLF"][0]) == (
        {"queue": ["Q1", "Q2"], "offered": ["1", "2"]},
        [2, 3],
        {},
        ["queue", "offered"],
    )
    table, lines, _, _ = read(READER_FILES["a line of empty fields"][0])
    assert (table, lines) == ({"queue": ["Q1", "Q2"], "offered": ["1", "2"]}, [2, 4])
    table, *_ = read(READER_FILES["trailing delimiters"][0])
    assert table == {"queue": ["Q1", "Q2"], "offered": ["1", "2"]}
    table, lines, *_ = read(*READER_FILES["a quoted line break later on"])
    assert (table["queue"][9], lines[9:11]) == ("Q\n1", [11, 13])
    assert read(READER_FILES["invalid UTF-8"][0]) == (
        3,
        "not valid utf-8: byte(s) ff at offset 20; check format.encoding",
    )
    assert read(READER_FILES["a header named twice"][0])[3] == ["queue", "offered", "offered (3)"]


def test_a_large_file_is_read_in_pieces(folder, state, monkeypatch):
    """A file of many pieces gives the rows a whole read gives, and each piece is shaped on
    its own: no piece holds more than its share of the file."""
    rows = [
        f"Q{q};Anrufe;16.11.2026;{h:02d}:{m:02d};5;4;1;00:02:00"
        for h in range(24)
        for m in (0, 15, 30, 45)
        for q in range(50)
    ]
    write(folder / "big.csv", german(*rows), "cp1252")
    shaped_rows: list[int] = []
    shape = CsvSource._shape

    def counting(self, kind, raw, context):
        shaped_rows.append(raw.table.num_rows)
        return shape(self, kind, raw, context)

    monkeypatch.setattr(CsvSource, "_shape", counting)
    monkeypatch.setattr(csv_reader, "PIECE_BYTES", 20_000)
    monkeypatch.setattr(csv_reader.read_pieces, "__defaults__", (20_000,))
    extract = source(folder, state, use_index=False).contacts(*WINDOW)
    assert len(extract.frame) == 2 * 4 * 50
    assert set(extract.frame["interval_start"].dt.floor("h")) == {
        utc("2026-11-16 07:00"),
        utc("2026-11-16 08:00"),
    }
    assert sum(shaped_rows) == len(rows)
    assert len(shaped_rows) > 10
    assert max(shaped_rows) < len(rows) / 10


@pytest.mark.parametrize("header_too", [True, False])
def test_trailing_delimiters(folder, state, header_too):
    header = GERMAN_HEADER + (";" if header_too else "")
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;1;1;0;00:01:00;",
            "Q;Anrufe;16.11.2026;08:15;1;1;0;00:01:00;;",
            header=header,
        ),
        "cp1252",
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.frame["source_ref"]) == ["a.csv:2", "a.csv:3"]
    assert extract.rejected.empty


def test_ragged_line_and_quoted_line_break_keep_exact_line_numbers(folder, state):
    write(
        folder / "a.csv",
        german(
            '"Q\r\nzwei Zeilen";Anrufe;16.11.2026;08:00;1;1;0;00:01:00',  # lines 2-3
            "Q;Anrufe;16.11.2026;08:15;1;1;0;00:01:00;extra",  # line 4: one field too many
            "",  # line 5: blank
            "Q;Anrufe;16.11.2026;08:30;x;1;0;00:01:00",  # line 6
        ),
        "cp1252",
        mtime=DELIVERED,  # the ragged line's time is unknown: it belongs to this hour
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.frame["external_queue_id"]) == ["Q\r\nzwei Zeilen"]
    assert list(extract.frame["source_ref"]) == ["a.csv:2"]
    rules = dict(zip(extract.rejected["source_ref"], extract.rejected["rules"], strict=True))
    assert rules == {
        "a.csv:4": ["line has 9 fields, the header has 8"],
        "a.csv:6": ["offered ('Angeboten'): not a number (decimal separator ',')"],
    }
    row = extract.rejected.set_index("source_ref").loc["a.csv:4", "row_json"]
    assert json.loads(row) == {"line": "Q;Anrufe;16.11.2026;08:15;1;1;0;00:01:00;extra"}


def test_missing_folder_is_a_source_error(tmp_path, state):
    with pytest.raises(SourceError, match=r"integration 'drop_csv': CSV folder .* does not exist"):
        source(tmp_path / "nowhere", state).contacts(*WINDOW)


# -- file index -----------------------------------------------------------------------------
def day_file(folder: Path, day: datetime) -> Path:
    rows = [
        f"Q;Anrufe;{day:%d.%m.%Y};{hour:02d}:{minute:02d};5;4;1;00:02:00"
        for hour in range(24)
        for minute in (0, 15, 30, 45)
    ]
    return write(folder / f"export_{day:%Y-%m-%d}.csv", german(*rows), "cp1252")


def test_index_reads_only_files_that_hold_the_window(folder, state):
    days = [datetime(2026, 11, 1) + timedelta(days=i) for i in range(20)]
    for day in days:
        day_file(folder, day)
    csv_source = source(folder, state)

    first = csv_source.contacts(*WINDOW)  # builds the index: every file is read once
    assert len(first.frame) == 8
    assert "20 file(s), 1 hold the window; 20 parsed, 0 known from the index" in first.description

    hour = (datetime(2026, 11, 10, 12, tzinfo=UTC), datetime(2026, 11, 10, 13, tzinfo=UTC))
    second = csv_source.contacts(*hour)
    assert list(second.frame["source_ref"]) == [
        f"export_2026-11-10.csv:{n}" for n in (54, 55, 56, 57)
    ]
    assert "1 parsed, 20 known from the index, 19 hold only other hours" in second.description
    # The file holds more than that hour, so its parsed rows were kept for the next hours.
    later = (hour[1], hour[1] + timedelta(hours=1))
    third = csv_source.contacts(*later)
    assert (
        "0 parsed, 20 known from the index, 19 hold only other hours; 1 read from the rows "
        "kept when they were parsed" in third.description
    )
    fresh = source(folder, state / "other", use_index=False).contacts(*later)
    pd.testing.assert_frame_equal(third.frame, fresh.frame)

    index = json.loads(csv_source.index_path().read_text())
    entry = index["files"]["contacts:export_2026-11-10.csv"]
    assert (entry["first"], entry["last"], entry["rows"]) == (
        "2026-11-09T23:00:00+00:00",
        "2026-11-10T22:45:00+00:00",
        96,
    )
    assert len(entry["sha256"]) == 64


def test_files_outside_the_window_are_indexed_from_their_times(
    folder, state, indexed_spans_match_whole_parses
):
    """The span a file covers, read from its times alone, around the rows that make it hard:
    bad times first and last (placed at the file's delivery hour), a repeated local hour
    resolved by file order, and a file with no readable time at all."""
    delivered = datetime(2026, 11, 20, 10, 40, tzinfo=UTC)
    write(
        folder / "edges.csv",
        german(
            "Q;Anrufe;xx.10.2026;02:00;1;1;0;00:01:00",
            "Q;Anrufe;25.10.2026;02:15;1;1;0;00:01:00",
            "Q;Anrufe;25.10.2026;02:15;2;2;0;00:01:00",  # the second 02:15 (CET)
            "Q;Anrufe;25.10.2026;03:00;3;3;0;kaputt",
            "Q;Anrufe;25.10.2026;25:00;1;1;0;00:01:00",
        ),
        "cp1252",
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # where its unreadable times belong
    )
    write(folder / "no_times.csv", german("Q;Anrufe;?;?;1;1;0;00:01:00"), "cp1252", delivered)
    write(folder / "header_only.csv", german(), "cp1252")
    fmt = {**GERMAN, "ambiguous_times": "order"}
    csv_source = source(folder, state, format=fmt)
    extract = csv_source.contacts(*WINDOW)  # holds none of them
    assert "3 file(s), 0 hold the window; 3 parsed" in extract.description
    assert sorted(indexed_spans_match_whole_parses) == [
        "edges.csv",
        "header_only.csv",
        "no_times.csv",
    ]
    index = json.loads(csv_source.index_path().read_text())["files"]
    edges = index["contacts:edges.csv"]
    assert (edges["first"], edges["last"]) == (
        "2026-10-25T00:15:00+00:00",  # 02:15 CEST
        "2026-10-25T02:00:00+00:00",  # 03:00 CET
    )
    assert (edges["rows"], edges["rejected"]) == (5, None)  # rejects not counted from times
    assert index["contacts:header_only.csv"]["first"] is None
    no_times = index["contacts:no_times.csv"]  # no time at all: its delivery hour
    assert no_times["first"] == no_times["last"] == "2026-11-20T10:00:00+00:00"
    # The window that holds them reads them whole.
    day = (datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC))
    again = csv_source.contacts(*day)
    assert list(again.frame["offered"]) == [1, 2]
    assert len(again.rejected) == 3


def test_index_notices_changed_touched_and_removed_files(folder, state):
    path = day_file(folder, datetime(2026, 11, 16))
    other = day_file(folder, datetime(2026, 11, 17))
    csv_source = source(folder, state)
    csv_source.contacts(*WINDOW)

    os.utime(path)  # touched, same content: hashed again, not parsed again (outside window)
    hour = (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, 1, tzinfo=UTC))
    assert "0 parsed, 2 known from the index" in csv_source.contacts(*hour).description

    text = path.read_text(encoding="cp1252").replace(";08:00;5;4;1;", ";08:00;9;9;0;")
    path.write_text(text, encoding="cp1252")  # changed: parsed again
    extract = csv_source.contacts(*WINDOW)
    assert "1 parsed, 1 known from the index" in extract.description
    assert extract.frame.set_index("interval_start").loc[utc("2026-11-16 07:00"), "offered"] == 9

    other.unlink()
    csv_source.contacts(*WINDOW)
    index = json.loads(csv_source.index_path().read_text())
    assert list(index["files"]) == ["contacts:export_2026-11-16.csv"]

    reformatted = source(folder, state, format={**GERMAN, "ambiguous_times": "order"})
    assert "1 parsed, 0 known from the index" in reformatted.contacts(*WINDOW).description


def test_without_index_every_file_is_parsed(folder, state):
    for i in range(3):
        day_file(folder, datetime(2026, 11, 14) + timedelta(days=i))
    extract = source(folder, state, use_index=False).contacts(*WINDOW)
    assert len(extract.frame) == 8
    assert "3 parsed" in extract.description
    assert not (state / "csv").exists()


NAMED = {"columns": GERMAN_COLUMNS, "channels": CHANNELS, "averages": True}
NAMED_DAY = "export_%Y-%m-%d.csv"


def named_source(folder: Path, state: Path, **contacts) -> CsvSource:
    """Day files whose names declare their (Berlin) day."""
    return source(folder, state, contacts={**NAMED, "day_in_name": NAMED_DAY, **contacts})


def reading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files read from disk from now on."""
    read: list[str] = []
    original = csv_files._read_chunks

    def recording(path: Path):
        read.append(path.name)
        return original(path)

    monkeypatch.setattr(csv_files, "_read_chunks", recording)
    return read


def test_named_day_is_the_local_day_in_utc(folder, state):
    csv_source = named_source(folder, state)
    assert csv_source.named_day("contacts", "export_2026-11-16.csv") == (
        utc("2026-11-15 23:00"),
        utc("2026-11-16 23:00"),
    )
    assert csv_source.named_day("contacts", "export_2026-10-25.csv") == (  # 25 hours
        utc("2026-10-24 22:00"),
        utc("2026-10-25 23:00"),
    )
    assert csv_source.named_day("contacts", "export_2026-03-29.csv") == (  # 23 hours
        utc("2026-03-28 23:00"),
        utc("2026-03-29 22:00"),
    )
    assert csv_source.named_day("contacts", "export_latest.csv") is None
    assert csv_source.named_day("agent_status", "export_2026-11-16.csv") is None
    assert source(folder, state).named_day("contacts", "export_2026-11-16.csv") is None


def test_files_named_by_their_day_are_indexed_without_being_read(folder, state, monkeypatch):
    for i in range(20):
        day_file(folder, datetime(2026, 11, 1) + timedelta(days=i))
    read = reading(monkeypatch)
    csv_source = named_source(folder, state)

    extract = csv_source.contacts(*WINDOW)
    assert read == ["export_2026-11-16.csv"]
    assert (
        "20 file(s), 1 hold the window; 1 parsed, 0 known from the index, 19 hold only other "
        "hours; 20 indexed from their names (contacts.day_in_name)" in extract.description
    )
    expected = source(folder, state / "other", use_index=False).contacts(*WINDOW)
    pd.testing.assert_frame_equal(extract.frame, expected.frame)
    assert list(extract.frame["offered"]) == [5] * 8

    index = json.loads(csv_source.index_path().read_text())["files"]
    entry = index["contacts:export_2026-11-10.csv"]
    assert (entry["first"], entry["last"]) == (
        "2026-11-09T23:00:00+00:00",
        "2026-11-10T22:59:59.999999999+00:00",
    )
    assert entry["sha256"].startswith("name-")

    read.clear()
    again = csv_source.contacts(*WINDOW)  # known now, and its rows kept when it was parsed
    assert read == []
    assert "0 parsed, 20 known from the index" in again.description
    assert "1 read from the rows kept when they were parsed" in again.description
    path = folder / "export_2026-11-10.csv"
    path.write_text(path.read_text(encoding="cp1252").replace(";5;4;1;", ";7;4;1;"), "cp1252")
    later = csv_source.contacts(datetime(2026, 11, 10, 7, tzinfo=UTC), WINDOW[1] - timedelta(6))
    assert "1 indexed from their names" in later.description  # changed: its name again
    assert set(later.frame["offered"]) == {7}
    assert len(later.frame) == 8


def test_rows_outside_the_named_day_are_quarantined_in_that_day(folder, state):
    write(
        folder / "export_2026-11-16.csv",
        german(
            "Q;Anrufe;16.11.2026;23:45;5;4;1;00:02:00",
            "Q;Anrufe;17.11.2026;00:15;6;5;1;00:02:00",  # the next local day
            "Q;Anrufe;16.11.2026;23:30;kaputt;4;1;00:02:00",
        ),
        "cp1252",
    )
    write(  # unreadable, delivered days later
        folder / "export_2026-11-18.csv",
        "Warteschlange,Kanal\nQ,Anrufe\n",
        "cp1252",
        datetime(2026, 11, 20, 10, 40, tzinfo=UTC),
    )
    csv_source = named_source(folder, state)
    last_hour = (datetime(2026, 11, 16, 22, tzinfo=UTC), datetime(2026, 11, 16, 23, tzinfo=UTC))
    extract = csv_source.contacts(*last_hour)
    assert list(extract.frame["source_ref"]) == ["export_2026-11-16.csv:2"]
    rejected = extract.rejected.set_index("source_ref")
    assert list(rejected.index) == ["export_2026-11-16.csv:4", "export_2026-11-16.csv:3"]
    rule = rejected.loc["export_2026-11-16.csv:3", "rules"][0]
    assert rule == (
        "interval_start: outside 2026-11-15T23:00:00+00:00..2026-11-16T23:00:00+00:00, the day "
        "the file name declares (contacts.day_in_name)"
    )
    assert json.loads(rejected.loc["export_2026-11-16.csv:3", "row_json"])["Angeboten"] == "6"
    assert list(rejected["partition_time"]) == [
        utc("2026-11-16 22:30"),  # its own time: the day holds it
        utc("2026-11-16 22:59:59.999999999"),  # the day's last instant
    ]
    # The hour the row names reads nothing: the index lists the file for its own day only.
    next_hour = (last_hour[1], last_hour[1] + timedelta(hours=1))
    assert csv_source.contacts(*next_hour).frame.empty
    # An unreadable day file fails the hours of its day, not its delivery hour.
    day_end = (datetime(2026, 11, 18, 22, tzinfo=UTC), datetime(2026, 11, 19, 1, tzinfo=UTC))
    broken = csv_source.contacts(*day_end)
    assert broken.rejected.empty
    assert failed_hours(broken) == [(utc("2026-11-18 22:00"), utc("2026-11-18 23:00"))]
    assert broken.failed[0].reason.startswith("export_2026-11-18.csv: no column(s)")
    delivered = (datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC))
    assert csv_source.contacts(*delivered).failed == []


def test_names_that_do_not_declare_a_day_are_indexed_from_their_times(
    folder, state, monkeypatch, indexed_spans_match_whole_parses
):
    day_file(folder, datetime(2026, 11, 15))
    write(folder / "resent.csv", german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"), "cp1252")
    read = reading(monkeypatch)
    extract = named_source(folder, state).contacts(*WINDOW)
    assert set(read) == {"resent.csv"}  # for its times, then for its rows
    assert indexed_spans_match_whole_parses == ["resent.csv"]
    assert list(extract.frame["source_ref"]) == ["resent.csv:2"]
    assert "1 indexed from their names" in extract.description


# -- agent status ---------------------------------------------------------------------------
AGENT_COLUMNS = {
    "Agent": "user_identifier",
    "Status": "external_activity",
    "Datum": "start_date",
    "Von": "start_time",
    "Bis": "end_time",
}


def test_agent_status_segments(folder, state):
    write(
        folder / "agents" / "states.csv",
        "\r\n".join(
            [
                "Agent;Status;Datum;Von;Bis",
                "Nacht;Verfügbar;15.11.2026;23:30;00:15",  # ends after midnight, before WINDOW
                "Anna.Smith;Verfügbar;16.11.2026;07:55;08:20",
                "anna.smith;Pause;16.11.2026;08:20;08:35",
                " anna.smith;Gespräch;16.11.2026;09:50;",  # still in that state
                "Bob;Gespräch;16.11.2026;9 Uhr;09:10",  # line 6: unreadable start
            ]
        )
        + "\r\n",
        "cp1252",
        mtime=DELIVERED,  # where the unreadable start belongs
    )
    csv_source = source(
        folder,
        state,
        agent_status={"glob": "agents/*.csv", "columns": AGENT_COLUMNS},
    )
    extract = csv_source.agent_status(*WINDOW)
    frame = extract.frame
    assert list(frame["user_identifier"]) == ["Anna.Smith", "anna.smith", " anna.smith"]
    assert list(frame["external_activity"]) == ["Verfügbar", "Pause", "Gespräch"]
    assert list(frame["start_utc"]) == [
        utc("2026-11-16 06:55"),
        utc("2026-11-16 07:20"),
        utc("2026-11-16 08:50"),
    ]
    assert list(frame["end_utc"][:2]) == [utc("2026-11-16 07:20"), utc("2026-11-16 07:35")]
    assert pd.isna(frame["end_utc"][2])
    assert list(extract.rejected["source_ref"]) == ["agents/states.csv:6"]
    night = csv_source.agent_status(
        datetime(2026, 11, 15, 22, tzinfo=UTC), datetime(2026, 11, 15, 23, tzinfo=UTC)
    ).frame
    assert list(night["end_utc"]) == [utc("2026-11-15 23:15")]  # rolled to the next day


def test_agent_status_with_iso_start_and_duration(folder, state):
    write(
        folder / "agents.csv",
        "user,state,since,seconds\nana@example.com,Available,2026-11-16T07:00:00Z,1800\n",
    )
    extract = source(
        folder,
        state,
        format={"time": "iso"},
        agent_status={
            "glob": "agents.csv",
            "columns": {
                "user": "user_identifier",
                "state": "external_activity",
                "since": "start",
                "seconds": "duration",
            },
        },
    ).agent_status(*WINDOW)
    assert extract.frame[["start_utc", "end_utc"]].to_dict("records") == [
        {"start_utc": utc("2026-11-16 07:00"), "end_utc": utc("2026-11-16 07:30")}
    ]


def test_agent_status_needs_its_section(folder, state):
    with pytest.raises(SourceError, match=r"no source\.agent_status section"):
        source(folder, state).agent_status(*WINDOW)


# -- config ---------------------------------------------------------------------------------
def test_config_errors_name_the_setting(tmp_path):
    base = {
        "id": "drop_csv",
        "vendor": "csv",
        "delivery": "cloud",
        "interval_minutes": 15,
        "timezone": "UTC",
        "history_start": "2026-11-01",
    }
    cases = [
        (
            {"folder": "x", "contacts": {"channels": {"Anrufe": "phone"}}},
            "unknown channel(s) phone",
        ),
        ({"folder": "x", "contacts": {"columns": {"a": "queue"}}}, "unknown field(s) queue"),
        ({"folder": "x", "format": {"encoding": "klingon"}}, "unknown encoding 'klingon'"),
        ({"folder": "x", "format": {"delimeter": ";"}}, "source.format.delimeter"),
        ({"folder": "x", "format": {"decimal": ",", "thousands": ","}}, "must differ"),
        (
            {"folder": "x", "contacts": {"day_in_name": "c_%Y-%m.csv"}},
            "does not name a whole date",
        ),
        (
            {"folder": "x", "contacts": {"day_in_name": "c_%Y%m%d%H.csv"}},
            "names a time of day",
        ),
        # Globs name files inside the folder only: never another integration's.
        ({"folder": "x", "contacts": {"glob": "../other/*.csv"}}, "outside source.folder"),
        ({"folder": "x", "contacts": {"glob": "/srv/other/*.csv"}}, "outside source.folder"),
        ({"folder": "x", "contacts": {"glob": "a/../../b/*.csv"}}, "outside source.folder"),
        (
            {"folder": "x", "agent_status": {"glob": "../agents/*.csv"}},
            "outside source.folder",
        ),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_integrations({"integrations": [{**base, "source": settings}]})


def test_parallel_runs_share_the_indexing_of_a_new_folder(folder, state, monkeypatch):
    """Two history months importing at once from a folder nobody indexed: each file is parsed
    for the index once, by one of the runs, and both windows get exactly their rows."""
    days = [datetime(2026, 11, 1) + timedelta(days=i) for i in range(40)]
    for day in days:
        day_file(folder, day)
    parsed: list[str] = []
    original = CsvSource.read_file

    def counting(self, kind, name, path, seen, **options):
        parsed.append(name)
        time.sleep(0.005)  # long enough for the two runs to meet on the same files
        return original(self, kind, name, path, seen, **options)

    monkeypatch.setattr(CsvSource, "read_file", counting)
    windows = [
        (datetime(2026, 11, 5, 12, tzinfo=UTC), datetime(2026, 11, 5, 13, tzinfo=UTC)),
        (datetime(2026, 12, 5, 12, tzinfo=UTC), datetime(2026, 12, 5, 13, tzinfo=UTC)),
    ]
    with ThreadPoolExecutor(2) as pool:
        extracts = list(pool.map(lambda w: source(folder, state).contacts(*w), windows))
    # 40 reads for the index, one more per window for the file that holds it, and at most one
    # more per window for a file the other run indexed.
    assert 42 <= len(parsed) <= 44
    assert len(set(parsed)) == 40
    index = json.loads(source(folder, state).index_path().read_text())
    assert len(index["files"]) == 40
    for window, extract in zip(windows, extracts, strict=True):
        assert len(extract.frame) == 4
        assert set(extract.frame["interval_start"]) == {
            pd.Timestamp(window[0]) + pd.Timedelta(minutes=m) for m in (0, 15, 30, 45)
        }


def test_kept_rows_equal_a_fresh_parse_and_follow_file_changes(folder, state):
    """The rows kept from parsing a file (good and rejected) are what parsing gives again; a
    changed or removed file's kept rows are dropped with its index entry."""
    path = day_file(folder, datetime(2026, 11, 16))
    text = path.read_text(encoding="cp1252").replace(";07:15;5;4;1;", ";07:15;5;9;1;")
    path.write_text(text, encoding="cp1252")  # answered > offered: one rejected row
    csv_source = source(folder, state)
    csv_source.contacts(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert "1 parsed" in csv_source.contacts(*WINDOW).description  # indexed, not kept
    kept = csv_source.contacts(*WINDOW)
    assert "1 read from the rows kept" in kept.description
    fresh = source(folder, state / "other", use_index=False).contacts(*WINDOW)
    pd.testing.assert_frame_equal(kept.frame, fresh.frame)
    pd.testing.assert_frame_equal(kept.rejected, fresh.rejected)
    assert len(list(csv_source.parsed_dir().glob("*.parquet"))) == 2  # rows and rejects

    before = set(csv_source.parsed_dir().glob("*.parquet"))
    path.write_text(text.replace(";08:00;5;4;1;", ";08:00;7;4;1;"), encoding="cp1252")
    changed = csv_source.contacts(*WINDOW)
    assert "1 parsed" in changed.description
    assert changed.frame.set_index("interval_start").loc[utc("2026-11-16 07:00"), "offered"] == 7
    after = set(csv_source.parsed_dir().glob("*.parquet"))
    assert len(after) == 2
    assert not after & before
    again = csv_source.contacts(*WINDOW)
    assert "1 read from the rows kept" in again.description
    pd.testing.assert_frame_equal(again.frame, changed.frame)
    path.unlink()
    csv_source.contacts(*WINDOW)
    assert not list(csv_source.parsed_dir().glob("*.parquet"))


# -- complete extracts only: files being written, changing, unreadable ----------------------
def failed_hours(extract) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    return [(pd.Timestamp(f.start), pd.Timestamp(f.end)) for f in extract.failed]


def rewriting(monkeypatch: pytest.MonkeyPatch, path: Path, texts: list[str]) -> list[str]:
    """Rewrite `path` (new content, size and modification time) just before each of its next
    reads, with the next of `texts` while they last: an exporter that writes the file in place
    while the import reads it. Returns the texts written so far."""
    written: list[str] = []
    pending = list(texts)
    original = csv_files._read_chunks

    def changing(target: Path):
        if target.name == path.name and pending:
            text = pending.pop(0)
            path.write_bytes(text.encode("cp1252"))
            moment = time.time() - 3600 + len(written)
            os.utime(path, (moment, moment))
            written.append(text)
        return original(target)

    monkeypatch.setattr(csv_files, "_read_chunks", changing)
    return written


def test_file_rewritten_while_read_is_read_again(folder, state, monkeypatch):
    path = write(folder / "export.csv", german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"))
    corrected = german("Q;Anrufe;16.11.2026;08:00;20;18;2;00:05:00")
    written = rewriting(monkeypatch, path, [corrected])
    extract = source(folder, state).contacts(*WINDOW)
    assert written == [corrected]
    assert extract.failed == []
    assert list(extract.frame["offered"]) == [20.0]  # the version that stood still
    assert "1 read again (changed while read)" in extract.description


def test_file_that_keeps_changing_while_read_fails_the_window(folder, state, monkeypatch):
    path = write(folder / "export.csv", german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"))
    write(folder / "other.csv", german("R;Anrufe;16.11.2026;08:00;3;3;0;00:05:00"))
    versions = [german(f"Q;Anrufe;16.11.2026;08:00;{n};1;0;00:05:00") for n in range(10, 40)]
    rewriting(monkeypatch, path, versions)
    extract = source(folder, state).contacts(*WINDOW)
    # What it holds is unknown, so no hour of the window is complete: none is delivered.
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 09:00"))]
    assert "export.csv: changed while it was read" in extract.failed[0].reason
    assert extract.frame.empty
    assert extract.rejected.empty


def test_named_day_file_that_keeps_changing_fails_its_day_only(folder, state, monkeypatch):
    day_file(folder, datetime(2026, 11, 15))
    path = day_file(folder, datetime(2026, 11, 16))
    text = path.read_text(encoding="cp1252")
    rewriting(
        monkeypatch,
        path,
        [text + f"Q;Anrufe;16.11.2026;23:45;{n};1;0;00:01:00\r\n" for n in range(30)],
    )
    span = (datetime(2026, 11, 15, 20, tzinfo=UTC), datetime(2026, 11, 16, 2, tzinfo=UTC))
    extract = named_source(folder, state).contacts(*span)
    assert failed_hours(extract) == [(utc("2026-11-15 23:00"), utc("2026-11-16 02:00"))]
    assert set(extract.frame["interval_start"].dt.floor("h")) == {
        utc("2026-11-15 20:00"),
        utc("2026-11-15 21:00"),
        utc("2026-11-15 22:00"),
    }


def test_too_young_file_defers_the_window_instead_of_emptying_it(folder, state):
    write(
        folder / "old.csv",
        german("R;Anrufe;16.11.2026;08:00;3;3;0;00:05:00"),
        mtime=datetime.now(UTC) - timedelta(hours=2),
    )
    write(folder / "export.csv", german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"))
    extract = source(folder, state, min_file_age_s=600).contacts(*WINDOW)
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 09:00"))]
    reason = extract.failed[0].reason
    assert "export.csv: modified" in reason
    assert "younger than source.min_file_age_s (600 s)" in reason
    assert extract.frame.empty
    assert "1 still being written" in extract.description


def test_too_young_named_day_file_defers_its_day_only(folder, state):
    old = datetime.now(UTC) - timedelta(hours=2)
    os.utime(day_file(folder, datetime(2026, 11, 15)), (old.timestamp(), old.timestamp()))
    day_file(folder, datetime(2026, 11, 16))
    span = (datetime(2026, 11, 15, 22, tzinfo=UTC), datetime(2026, 11, 16, 1, tzinfo=UTC))
    extract = source(
        folder, state, min_file_age_s=600, contacts={**NAMED, "day_in_name": NAMED_DAY}
    ).contacts(*span)
    assert failed_hours(extract) == [(utc("2026-11-15 23:00"), utc("2026-11-16 01:00"))]
    assert set(extract.frame["interval_start"].dt.floor("h")) == {utc("2026-11-15 22:00")}


def test_offset_mode_without_offset_column_fails_the_files_hours(folder, state):
    """A misconfiguration (local times resolved by an offset column the files do not have)
    must not load nothing and say ok: the hours the file holds fail, naming file and column."""
    write(
        folder / "export.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00",
            "Q;Anrufe;16.11.2026;09:15;10;9;1;00:05:00",
        ),
        mtime=datetime(2026, 11, 20, 10, 40, tzinfo=UTC),  # delivered days later
    )
    extract = source(folder, state, format={**GERMAN, "ambiguous_times": "offset"}).contacts(
        *WINDOW
    )
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 09:00"))]
    reason = extract.failed[0].reason
    assert reason.startswith("export.csv: no column(s) 'utc_offset'")
    assert extract.frame.empty
    # The hour it was delivered in holds none of its rows: nothing fails there.
    delivered = (datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC))
    assert (
        source(folder, state, format={**GERMAN, "ambiguous_times": "offset"})
        .contacts(*delivered)
        .failed
        == []
    )


def test_misconfigured_integration_fails_its_run_and_marks_nothing_loaded(
    folder, state, settings, warehouse, instance
):
    write(
        folder / "export.csv",
        german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"),
        mtime=datetime(2026, 11, 20, 10, 40, tzinfo=UTC),
    )
    integration = csv_integration(folder, state, format={**GERMAN, "ambiguous_times": "offset"})
    result = import_range(definitions(settings, integration), instance, integration.id, *WINDOW)
    assert not result.success
    message = failure_message(result)
    assert "export.csv: no column(s) 'utc_offset'" in message
    assert "2026-11-16 07:00..2026-11-16 09:00 UTC" in message
    # Nothing of the file's hour is called loaded: the import log has it as failed and never
    # loaded (the file and the missing column named); the window's other hour, which no file
    # holds, loaded empty (a quiet hour is not a hole).
    log = warehouse.query(
        "SELECT partition_start, imported_at, failure, failures FROM imports "
        "WHERE integration_id = ? ORDER BY partition_start",
        [integration.id],
    )
    failed, quiet = log.to_dict("records")
    assert failed["partition_start"] == pd.Timestamp("2026-11-16 07:00", tz="UTC")
    assert pd.isna(failed["imported_at"])
    assert "export.csv: no column(s) 'utc_offset'" in failed["failure"]
    assert failed["failures"] == 1
    assert (pd.notna(quiet["imported_at"]), quiet["failures"]) == (True, 0)
    statuses = warehouse.query(
        "SELECT count(*) AS n FROM coverage_intervals WHERE integration_id = ? "
        "AND status = 'loaded' AND partition_start = ?",
        [integration.id, failed["partition_start"]],
    )
    assert list(statuses["n"]) == [0]


def failure_message(result) -> str:
    """The description of the run's failed step."""
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1
    return failures[0].step_failure_data.error.message


def test_window_is_not_emptied_by_a_file_changing_while_read(
    folder, state, settings, warehouse, instance, monkeypatch
):
    path = write(
        folder / "export.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00", "Q;Anrufe;16.11.2026;09:00;4;4;0;00:05:00"
        ),
        mtime=datetime.now(UTC) - timedelta(hours=2),
    )
    integration = csv_integration(folder, state)
    defs = definitions(settings, integration)
    assert import_range(defs, instance, integration.id, *WINDOW).success
    assert list(warehouse.query("SELECT offered FROM contact_intervals ORDER BY 1")["offered"]) == [
        4,
        10,
    ]

    rewriting(
        monkeypatch,
        path,
        [german(f"Q;Anrufe;16.11.2026;08:{n:02d};1;1;0;00:05:00") for n in range(30)],
    )
    result = import_range(defs, instance, integration.id, *WINDOW)
    assert not result.success  # its hours failed, visibly; they are imported again later
    assert "export.csv: changed while it was read" in failure_message(result)
    assert list(warehouse.query("SELECT offered FROM contact_intervals ORDER BY 1")["offered"]) == [
        4,
        10,
    ]


def test_window_is_not_emptied_by_a_too_young_file(folder, state, settings, warehouse, instance):
    path = write(
        folder / "export.csv",
        german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00"),
        mtime=datetime.now(UTC) - timedelta(hours=2),
    )
    integration = csv_integration(folder, state, min_file_age_s=600)
    defs = definitions(settings, integration)
    assert import_range(defs, instance, integration.id, *WINDOW).success
    write(path, german("Q;Anrufe;16.11.2026;08:00;11;9;1;00:05:00"))  # being written now
    assert not import_range(defs, instance, integration.id, *WINDOW).success
    assert list(warehouse.query("SELECT offered FROM contact_intervals")["offered"]) == [10]


# -- the folder is a boundary ---------------------------------------------------------------
def test_links_to_files_outside_the_folder_are_refused(folder, state, tmp_path):
    elsewhere = write(
        tmp_path / "elsewhere" / "secret.csv",
        german("Fremd;Anrufe;16.11.2026;08:00;99;99;0;00:05:00"),
    )
    good_file(folder)
    (folder / "linked.csv").symlink_to(elsewhere)
    (folder / "system.csv").symlink_to("/etc/passwd")
    read = []
    original = csv_files._read_chunks
    csv_files._read_chunks = lambda path: read.append(path) or original(path)
    try:
        extract = source(folder, state).contacts(*WINDOW)
    finally:
        csv_files._read_chunks = original
    assert set(read) == {folder.resolve() / "good.csv"}  # the links are never opened
    assert list(extract.frame["source_ref"]) == ["good.csv:2"]
    text = extract.description
    refused = (
        f"linked.csv: a link to {elsewhere.resolve()}, outside the folder {folder.resolve()}: "
        "not read (files are read only inside source.folder)"
    )
    assert refused in text
    assert "system.csv: a link to /etc/passwd, outside the folder" in text
    assert "2 refused (links out of the folder)" in text
    assert extract.failed == []  # the links were made now, not in the window's hours
    first_line = Path("/etc/passwd").read_text().splitlines()[0]
    assert first_line not in text + extract.rejected.to_json() + extract.frame.to_json()


def test_link_out_of_the_folder_fails_the_hour_it_was_made(folder, state, tmp_path):
    elsewhere = write(
        tmp_path / "elsewhere.csv", german("F;Anrufe;16.11.2026;08:00;9;9;0;00:05:00")
    )
    good_file(folder)
    link = folder / "linked.csv"
    link.symlink_to(elsewhere)
    os.utime(link, (DELIVERED.timestamp(), DELIVERED.timestamp()), follow_symlinks=False)
    extract = source(folder, state).contacts(*WINDOW)
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 08:00"))]
    assert extract.failed[0].reason.startswith("linked.csv: a link to ")
    assert extract.frame.empty  # good.csv's row is in that hour: the hour is not delivered


def test_links_inside_the_folder_are_read(folder, state):
    good_file(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "alias.csv").symlink_to(folder / "good.csv")
    extract = source(folder, state, contacts={**NAMED, "glob": "sub/*.csv"}).contacts(*WINDOW)
    assert list(extract.frame["source_ref"]) == ["sub/alias.csv:2"]
    assert extract.failed == []


def test_linked_subfolder_outside_the_folder_is_refused(folder, state, tmp_path):
    write(tmp_path / "other" / "b.csv", german("Fremd;Anrufe;16.11.2026;08:00;99;99;0;00:05:00"))
    (folder / "more").symlink_to(tmp_path / "other", target_is_directory=True)
    extract = source(folder, state, contacts={**NAMED, "glob": "*/*.csv"}).contacts(*WINDOW)
    assert extract.frame.empty
    assert "more/b.csv: a link to" in extract.description


def test_glob_reaching_another_integrations_folder_reads_nothing(folder, state, tmp_path):
    write(tmp_path / "other" / "b.csv", german("Fremd;Anrufe;16.11.2026;08:00;99;99;0;00:05:00"))
    csv_source = source(folder, state)
    settings = csv_source.settings.model_copy(
        update={
            "contacts": csv_source.settings.contacts.model_copy(update={"glob": "../other/*.csv"})
        }
    )
    csv_source = CsvSource(
        integration_id="drop_csv", timezone="Europe/Berlin", interval_minutes=15, settings=settings
    )
    with pytest.raises(SourceError, match=re.escape("outside source.folder")):
        csv_source.contacts(*WINDOW)


# -- headers and times ----------------------------------------------------------------------
def test_header_naming_a_used_column_twice_is_a_file_problem(folder, state):
    write(
        folder / "export.csv",
        german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00;12", header=GERMAN_HEADER + ";Angeboten"),
        mtime=DELIVERED,
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert extract.frame.empty
    assert failed_hours(extract) == [(utc("2026-11-16 07:00"), utc("2026-11-16 08:00"))]
    assert "export.csv: the header names column 'Angeboten' twice (columns 5 and 9)" in (
        extract.failed[0].reason
    )


def test_duplicate_column_that_is_not_used_or_mapped_by_position(folder, state):
    write(
        folder / "export.csv",
        german(
            "Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00;x;y", header=GERMAN_HEADER + ";Notiz;Notiz"
        ),
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.frame["offered"]) == [10.0]
    write(
        folder / "export.csv",
        german("Q;Anrufe;16.11.2026;08:00;10;9;1;00:05:00;12", header=GERMAN_HEADER + ";Angeboten"),
    )
    columns = {**GERMAN_COLUMNS, "Angeboten (9)": "offered"}
    del columns["Angeboten"]
    extract = source(
        folder, state, contacts={"columns": columns, "channels": CHANNELS, "averages": True}
    ).contacts(*WINDOW)
    assert list(extract.frame["offered"]) == [12.0]


def test_unreadable_time_is_placed_in_the_files_delivery_hour_and_says_so(folder, state):
    write(
        folder / "a.csv",
        german(
            "Q;Anrufe;16.11.2026;07:00;1;1;0;00:01:00",  # 06:00 UTC: before the window
            "Q;Anrufe;16.11.2026;8 Uhr;1;1;0;00:01:00",
            "Q;Anrufe;16.11.2026;09:30;1;1;0;00:01:00",
        ),
        mtime=datetime(2026, 11, 16, 8, 10, tzinfo=UTC),
    )
    extract = source(folder, state).contacts(*WINDOW)
    assert list(extract.rejected["source_ref"]) == ["a.csv:3"]
    assert list(extract.rejected["partition_time"]) == [utc("2026-11-16 08:00")]
    assert extract.rejected["rules"][0][-1] == (
        "time unreadable: placed in the hour the file was delivered (its modification time)"
    )


# -- the quarantine keeps the row as it came ------------------------------------------------
def test_rule_failures_keep_the_fields_as_delivered(folder, state, settings, warehouse, instance):
    write(
        folder / "export.csv",
        german(
            "Büro Süd;Anrufe;16.11.2026;08:00;10;9;1;00:05:00",
            "Büro Süd;Anrufe;16.11.2026;08:15;5;9;1;00:04:30",  # answered > offered
        ),
        "cp1252",
    )
    integration = csv_integration(folder, state).model_copy(update={"max_rejected_share": 0.9})
    assert import_range(
        definitions(settings, integration), instance, integration.id, *WINDOW
    ).success
    rejected = warehouse.query("SELECT source_ref, row_json, rules FROM rejected_rows")
    assert list(rejected["source_ref"]) == ["export.csv:3"]
    assert json.loads(rejected["row_json"][0]) == {
        "Warteschlange": "Büro Süd",
        "Kanal": "Anrufe",
        "Datum": "16.11.2026",
        "Uhrzeit": "08:15",
        "Angeboten": "5",
        "Angenommen": "9",
        "Abgebrochen": "1",
        "AHT": "00:04:30",
    }
    assert "answered <= offered" in list(rejected["rules"][0])


def test_a_glob_that_matches_nothing_and_dangling_links_are_named(folder, state):
    extract = source(folder, state, contacts={**NAMED, "glob": "exports/*.csv"}).contacts(*WINDOW)
    assert "no file in the folder matches 'exports/*.csv'" in extract.description
    (folder / "gone.csv").symlink_to(folder / "nothing.csv")
    extract = source(folder, state).contacts(*WINDOW)
    assert "gone.csv: a link to a file that does not exist: not read" in extract.description
