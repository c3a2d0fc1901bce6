"""The benchmark's history parts at a small scale: the whole history and, as a second import
into a new project, its newest year; the memory of every process of each; the ratio to dlt's
merge when the peers part ran; then remapping through the mapping sensor and a mappings run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import bench.__main__ as bench
from bench.workloads import Workload, write_csv_files
from tests.bench.extra import needs_bench_extra

# A day of September and all of October: two monthly runs, the newest year both of them.
WORKLOAD = Workload(queues=5, start=datetime(2026, 9, 30, tzinfo=UTC), days=32)


@pytest.mark.slow
@pytest.mark.postgres
def test_history_then_remap_through_the_mapping_sensor(tmp_path, monkeypatch):
    needs_bench_extra("dlt", "psutil")
    monkeypatch.setattr(bench, "WORK", tmp_path)
    csv_dir = tmp_path / "csv"
    write_csv_files(WORKLOAD, csv_dir)
    report = bench.Report(part="peers")
    floor = bench.part_floor(report, csv_dir, WORKLOAD.rows)
    peers = bench.part_peers(report, csv_dir, WORKLOAD.rows, floor)
    report.part = "csv"
    project = bench.part_history(report, "csv", WORKLOAD, csv_dir, floor, peers)
    figures = {f.name: f for f in report.figures}
    wall = figures["history csv: wall time (2 range runs)"].value
    assert figures["history csv: ratio to floor"].value == pytest.approx(wall / floor)
    assert figures["history csv: ratio to dlt's merge (part peers)"].value == pytest.approx(
        wall / peers
    )
    whole = figures["history csv: peak memory of all the import's processes (PSS, summed)"]
    year = figures["history csv: the same, a separate import of the newest 2 months"]
    assert whole.value > 0
    assert year.value > 0
    # The launcher, the warm server and the run processes.
    assert int(whole.note.split(" processes over the import")[0].rsplit(" ", 1)[1]) >= 4
    assert (tmp_path / "project_csv_year" / "warehouse").exists()

    report.part = "remap"
    bench.part_remap_and_queries(report, project, WORKLOAD.queues, WORKLOAD.end)
    remaps = [f for f in report.figures if f.name.startswith("remap:")]
    assert [f.name for f in remaps] == [
        "remap: 5 queue mappings until queue_intervals shows them (whole history)",
        "remap: 5 queue mappings until queue_intervals shows them (newest year)",
    ]
    assert all(f.value > 0 and "mapping sensor" in f.note for f in remaps)
