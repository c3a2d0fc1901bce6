"""What the CSV file index saves: one hourly partition over years of daily export files.

Writes `--days` daily files (one row per queue and 15-minute interval, the German export
format of the README example) into a temporary folder, then times `CsvSource.contacts` for one
hour three ways:

- no index: every file is parsed for every hour (what the index avoids);
- cold index: the first import builds the index (every file parsed once);
- warm index: a later hour reads only the one file that holds it (the others are one `stat`);
- cold index from names: the first import with `contacts.day_in_name` (no file read to index).

With `--large-mb N`, also one file of about N MB (a month of 15-minute rows) and the peak
memory (resident set, in a fresh process each) of importing one hour of it, without and with
the index: the file is read in pieces, so the peak follows a piece and the hour's rows, not the
file's size.

Run: `.venv/bin/python bench/csv_file_index.py [--days 1096] [--queues 10] [--large-mb 211]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from etl.resources.sources.universal.csv_files import CsvSettings, CsvSource

FORMAT = {
    "delimiter": ";",
    "decimal": ",",
    "encoding": "cp1252",
    "time": "local",
    "date_format": "%d.%m.%Y",
    "duration_unit": "hms",
}
COLUMNS = {
    "Warteschlange": "external_queue_id",
    "Kanal": "channel",
    "Datum": "interval_date",
    "Uhrzeit": "interval_time",
    "Angeboten": "offered",
    "Angenommen": "answered",
    "Abgebrochen": "abandoned",
    "AHT": "handle_time",
}


def write_files(folder: Path, first_day: datetime, days: int, queues: int) -> int:
    rows = 0
    header = ";".join(COLUMNS)
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        lines = [header]
        for quarter in range(96):
            clock = f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"
            for queue in range(queues):
                offered = 3 + (quarter + queue) % 17
                lines.append(
                    f"Queue {queue};Anrufe;{day:%d.%m.%Y};{clock};{offered};{offered - 1};1;"
                    f"00:0{queue % 10}:3{quarter % 10}"
                )
        (folder / f"export_{day:%Y-%m-%d}.csv").write_text(
            "\r\n".join(lines) + "\r\n", encoding="cp1252"
        )
        rows += len(lines) - 1
    return rows


def source(folder: Path, state: Path, use_index: bool, named: bool = False) -> CsvSource:
    settings = CsvSettings.model_validate(
        {
            "folder": str(folder),
            "state_dir": str(state),
            "use_index": use_index,
            "format": FORMAT,
            "contacts": {
                "columns": COLUMNS,
                "channels": {"Anrufe": "calls"},
                "averages": True,
                "day_in_name": "export_%Y-%m-%d.csv" if named else None,
            },
        }
    )
    return CsvSource(
        integration_id="bench_csv",
        timezone="Europe/Berlin",
        interval_minutes=15,
        settings=settings,
    )


def timed(csv_source: CsvSource, hour: datetime) -> tuple[float, int, str]:
    started = time.perf_counter()
    extract = csv_source.contacts(hour, hour + timedelta(hours=1))
    return time.perf_counter() - started, len(extract.frame), extract.description


def write_large_file(path: Path, megabytes: float) -> tuple[int, datetime]:
    """One export of about `megabytes` MB: 15-minute rows of many queues from 2024-01-01 on,
    written a day at a time. Returns the rows and the first day."""
    first_day = datetime(2024, 1, 1)
    rows = 0
    with path.open("w", encoding="cp1252", newline="") as out:
        out.write(";".join(COLUMNS) + "\r\n")
        day = first_day
        while out.tell() < megabytes * 1e6:
            for quarter in range(96):
                clock = f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"
                for queue in range(200):
                    offered = 3 + (quarter + queue) % 17
                    out.write(
                        f"Queue {queue};Anrufe;{day:%d.%m.%Y};{clock};{offered};{offered - 1};1;"
                        f"00:0{queue % 10}:3{quarter % 10}\r\n"
                    )
                    rows += 1
            day += timedelta(days=1)
    return rows, first_day


def measure(folder: Path, state: Path, use_index: bool, hour: datetime) -> dict:
    """One hour imported in this process: seconds, rows and peak resident memory."""
    csv_source = source(folder, state, use_index)
    seconds, found, _ = timed(csv_source, hour)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": seconds, "rows": found, "peak_mib": peak}


def large_file(megabytes: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "drop"
        folder.mkdir()
        path = folder / "export_all.csv"
        rows, first_day = write_large_file(path, megabytes)
        size = path.stat().st_size / 1e6
        hour = datetime(first_day.year, first_day.month, first_day.day, 10, tzinfo=UTC)
        print(f"one file, {rows:,} rows, {size:.0f} MB; one hour imported in a fresh process:")
        for use_index, label in ((False, "no index"), (True, "cold index (first import)")):
            state = Path(tmp) / f"state_{use_index}"
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    str(folder),
                    str(state),
                    str(use_index),
                    hour.isoformat(),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"  {label:<38} {figures['seconds']:8.3f} s  {figures['rows']:>4} rows   "
                f"peak {figures['peak_mib']:.0f} MiB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--large-mb", type=float, default=0, help="also one file this large")
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        folder, state, use_index, hour = args.measure
        figures = measure(
            Path(folder), Path(state), use_index == "True", datetime.fromisoformat(hour)
        )
        print(json.dumps(figures))
        return
    if args.large_mb:
        large_file(args.large_mb)
    if not args.days:
        return
    first_day = datetime(2024, 1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder, state = Path(tmp) / "drop", Path(tmp) / "state"
        folder.mkdir()
        rows = write_files(folder, first_day, args.days, args.queues)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"{args.days} daily files, {rows:,} rows, {size:.0f} MB")
        hour = datetime(2024, 6, 3, 10, tzinfo=UTC)
        later = hour + timedelta(days=30, hours=3)
        results = [
            ("no index, one hour", *timed(source(folder, state, False), hour)),
            ("cold index (first import), one hour", *timed(source(folder, state, True), hour)),
            ("warm index, another hour", *timed(source(folder, state, True), later)),
            (
                "cold index from names, one hour",
                *timed(source(folder, Path(tmp) / "named", True, named=True), hour),
            ),
        ]
        for name, seconds, found, description in results:
            print(
                f"  {name:<38} {seconds:8.3f} s  {found:>4} rows   {description.split(': ', 1)[1]}"
            )
        print(f"  warm index is {results[0][1] / results[2][1]:.0f}x faster than no index")


if __name__ == "__main__":
    main()
