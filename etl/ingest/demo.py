"""`make demo`'s push integration: a day of simulated data sent through the real server.

The demo starts `wfm-etl serve` on a free port, gives each `vendor: api` integration a fresh
API key and POSTs the last day of simulator contact intervals and agent segments as a
customer's system would (batches of 1,000 records), then stops the server; the demo's imports
then read them from the landing store like any other source.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from etl.config import Integration
from etl.ingest.keys import issue_key
from etl.ingest.store import LandingStore, landing_url
from etl.resources.sources.simulator.simulator import SimulatorSettings, SimulatorSource

BATCH = 1_000
PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def _iso(value: pd.Timestamp) -> str | None:
    return None if pd.isna(value) else value.isoformat()


def demo_records(integration: Integration, start: datetime, end: datetime, seed: int):
    source = SimulatorSource(
        integration_id=integration.id,
        timezone=integration.timezone,
        interval_minutes=integration.interval_minutes,
        settings=SimulatorSettings(seed=seed, queues=3, channels=["calls", "chats"]),
    )
    contacts = [
        {
            "queueIdentifier": row.external_queue_id,
            "queueName": row.external_queue_id.title(),
            "channel": row.channel,
            "timestamp": row.interval_start.tz_convert(integration.timezone).isoformat(),
            "properties": {
                "offered": int(row.offered),
                "handled": int(row.answered),
                "abandoned": int(row.abandoned),
                "duration": float(row.handle_time_s),
            },
        }
        for row in source.contacts(start, end).frame.itertuples()
    ]
    statuses = []
    for row in source.agent_status(start, end).frame.itertuples():
        record = {
            "agentIdentifier": row.user_identifier,
            "activityIdentifier": row.external_activity,
            "startTime": row.start_utc.isoformat(),
        }
        if _iso(row.end_utc):
            record["endTime"] = row.end_utc.isoformat()
        statuses.append(record)
    return contacts, statuses


def _post(url: str, key: str, records: list[dict]) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps({"data": records}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def push_demo_day(integrations: list[Integration], end: datetime, log_dir: Path) -> list[str]:
    """Push the day before `end` of every push integration through a real server."""
    push = [i for i in integrations if i.vendor == "api"]
    if not push:
        return []
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "demo-serve.log"
    with open(log, "wb") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "etl", "serve", "--port", "0", "--no-access-log"],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            port = _wait_for_port(server, log)
            store = LandingStore(landing_url())
            lines = []
            for n, integration in enumerate(push):
                key = issue_key(store, integration.id)
                start = max(end - timedelta(days=1), integration.history_start)
                contacts, statuses = demo_records(integration, start, end, seed=40 + n)
                base = f"http://127.0.0.1:{port}/v1/integrations/{integration.id}"
                counts = {}
                for path, records in (("contact-events", contacts), ("agent-statuses", statuses)):
                    if path == "contact-events" and "contacts" not in integration.data:
                        continue
                    if path == "agent-statuses" and "agent_status" not in integration.data:
                        continue
                    accepted = 0
                    for first in range(0, len(records), BATCH):
                        accepted += _post(f"{base}/{path}", key, records[first : first + BATCH])[
                            "accepted"
                        ]
                    counts[path] = (accepted, len(records))
                sent = ", ".join(f"{a} of {t} {p}" for p, (a, t) in counts.items())
                lines.append(
                    f"{integration.id}: pushed {sent} through http://127.0.0.1:{port} "
                    f"(key {key[:8]}...; `wfm-etl api-key rotate {integration.id}` for your own)"
                )
            store.dispose()
            time.sleep(1.5)  # the live views' last publish
            return lines
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Every batch was acknowledged, so it is on disk: a server that does not stop
                # on SIGTERM is killed rather than left running after the demo.
                server.kill()
                server.wait(timeout=30)


def _wait_for_port(server: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = PORT_LINE.search(log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the ingestion service did not start:\n{log.read_text()[-2000:]}")
