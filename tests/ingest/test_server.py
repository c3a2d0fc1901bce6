"""`wfm-etl serve` stops on SIGTERM, its live-view publisher with it, whatever signal
dispositions it inherited from the process that started it."""

from __future__ import annotations

import contextlib
import signal
import time
from datetime import UTC, datetime

import psutil

from tests.ingest.server import (
    Home,
    Server,
    post,
    status,
    statuses_path,
    wait_for,
    warehouse_of,
)

STOPS_WITHIN_S = 15


def _ignore_sigterm() -> None:
    """What a supervisor or shell that ignores SIGTERM passes on to its children."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _publisher_of(server: Server) -> psutil.Process:
    children = psutil.Process(server.process.pid).children()
    assert len(children) == 1, children
    return children[0]


def test_serve_and_its_publisher_stop_on_sigterm_even_when_sigterm_was_ignored(
    home: Home,
) -> None:
    key = home.key("push_berlin")
    server = Server(home, preexec_fn=_ignore_sigterm)
    publisher = _publisher_of(server)
    try:
        warehouse = warehouse_of(home)
        record = status("anna", "Available", datetime.now(UTC).replace(microsecond=0))
        assert post(server.url, statuses_path(), {"data": [record]}, key=key).status == 202
        wait_for(  # the publisher is at work when the server is stopped
            lambda: int(warehouse.query("SELECT count(*) AS n FROM agent_status_live")["n"][0]),
            1,
        )

        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=STOPS_WITHIN_S)
        stopped_s = time.monotonic() - began
    finally:  # neither may outlive the test, whatever happened
        for process in (server.process, publisher):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()
        server.stop()

    assert stopped_s < STOPS_WITHIN_S
    assert not publisher.is_running() or publisher.status() == psutil.STATUS_ZOMBIE
    assert "Finished server process" in server.output
