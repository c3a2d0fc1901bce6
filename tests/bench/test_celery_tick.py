"""The benchmark's Celery part at a small scale: the same tick runs through the one-host
launcher and on two Celery workers, every run succeeds, and the figures are there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import bench.__main__ as bench


@pytest.mark.slow
@pytest.mark.postgres
def test_the_tick_on_one_host_and_on_two_celery_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "WORK", tmp_path)
    report = bench.Report(part="celery")
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    bench.part_celery(report, queues=5, integrations=3, history_start=month - timedelta(days=31))
    figures = {f.name: f for f in report.figures}
    one_host = figures[
        "tick on one host (preloaded launcher, 2 at a time): 3 integrations x 5 queues"
    ]
    celery = figures["tick on 2 Celery workers (1 process each): 3 integrations x 5 queues"]
    assert one_host.value > 0
    assert celery.value > 0
    assert 0 < figures["overhead per run, one host"].value < one_host.value
    assert 0 < figures["overhead per run, Celery"].value < celery.value
    assert all(f.part == "celery" for f in report.figures)
