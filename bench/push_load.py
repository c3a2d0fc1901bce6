"""Load on the ingestion service: agent status from concurrent clients, a `kill -9` of the
server in the middle and a restart, analysts querying the live view all along.

Each client sends a batch every `1 / batches_per_s` seconds (each record a closed segment of
one of its agents; every batch has its own Idempotency-Key) over a keep-alive connection,
and retries a batch whose request failed (the server was killed) until it is acknowledged.
Afterwards the landing store must hold every record of every batch exactly once. An analyst
process queries `agent_status_live` in a loop and counts errors and batches it saw only in
part (every batch's records share one start time).

    python -m bench.push_load --clients 50 --seconds 60 --rate 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]
BATCH_RECORDS = 10


@dataclass
class ClientStats:
    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # seconds after the start, per latency
    batches: int = 0
    failed_attempts: int = 0
    records: int = 0


def project(folder: Path) -> dict[str, str]:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "mappings").mkdir(parents=True)
    integration = {
        "id": "push_bench",
        "vendor": "api",
        "delivery": "cloud",
        "interval_minutes": 15,
        "data": ["agent_status"],
        "timezone": "UTC",
        "history_start": "2026-01-01",
    }
    (folder / "integrations.yaml").write_text(yaml.safe_dump({"integrations": [integration]}))
    return {
        **os.environ,
        "WFM_HOME": str(folder),
        "WFM_INTEGRATIONS": str(folder / "integrations.yaml"),
        "WFM_WAREHOUSE_DIR": str(folder / "warehouse"),
        "WFM_MAPPINGS_DIR": str(folder / "mappings"),
        "WFM_LANDING_URL": f"sqlite:///{folder / 'data' / 'landing' / 'landing.sqlite'}",
    }


def start_server(env: dict[str, str], log: Path):
    import re
    import subprocess

    handle = open(log, "ab")  # noqa: SIM115 - kept open for the process's life
    process = subprocess.Popen(
        [sys.executable, "-m", "etl", "serve", "--port", "0", "--no-access-log"],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    pattern = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
    before = len(pattern.findall(log.read_bytes()))
    while time.monotonic() < deadline:
        found = list(pattern.finditer(log.read_bytes()))
        if len(found) > before and process.poll() is None:
            port = int(found[-1].group(1))
            if _healthy(port):
                return process, port
        time.sleep(0.05)
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/v1/health")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def analyst(catalog: str, stop, out) -> None:
    """Query the live view until told to stop; report queries, errors, partial batches."""
    queries = errors = partial = 0
    messages: list[str] = []
    while not stop.is_set():
        try:
            with duckdb.connect(catalog, read_only=True) as con:
                rows = con.execute(
                    "SELECT count(*) FROM (SELECT split_part(user_identifier, '-', 1), start_utc, "
                    "count(*) AS n FROM agent_status_live GROUP BY ALL) WHERE n <> ?",
                    [BATCH_RECORDS],
                ).fetchone()
            partial += rows[0]
            queries += 1
        except duckdb.Error as exc:
            errors += 1
            messages.append(str(exc)[:200])
        time.sleep(0.1)
    out.put({"queries": queries, "errors": errors, "partial": partial, "messages": messages[:5]})


def run(clients: int, seconds: float, rate: float, folder: Path, kill_at: float | None) -> dict:
    env = project(folder)
    os.environ.update({k: env[k] for k in env if k.startswith("WFM_")})
    from etl.ingest.keys import issue_key
    from etl.ingest.store import LandingStore
    from etl.resources.warehouse import Warehouse

    store = LandingStore(env["WFM_LANDING_URL"])
    key = issue_key(store, "push_bench")
    warehouse = Warehouse(root=env["WFM_WAREHOUSE_DIR"])
    warehouse.ensure_catalog()
    log = folder / "serve.log"
    log.touch()
    process, port = start_server(env, log)
    state = {"port": port}
    interval = clients * BATCH_RECORDS / rate  # seconds between one client's batches
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    stats = [ClientStats() for _ in range(clients)]
    started = time.monotonic()
    deadline = started + seconds

    def client(n: int) -> None:
        connection = None
        seq = 0
        mine = stats[n]
        next_at = started + interval * n / clients
        while next_at < deadline:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            start = base + timedelta(milliseconds=10 * seq)
            data = [
                {
                    "agentIdentifier": f"c{n}-a{k}",
                    "activityIdentifier": "Available",
                    "startTime": start.isoformat(),
                    "endTime": (start + timedelta(milliseconds=5)).isoformat(),
                }
                for k in range(BATCH_RECORDS)
            ]
            body = json.dumps({"data": data})
            headers = {
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"c{n}-{seq}",
            }
            while True:  # until acknowledged: the server may be killed under us
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", state["port"], 10)
                    sent = time.monotonic()
                    connection.request(
                        "POST", "/v1/integrations/push_bench/agent-statuses", body, headers
                    )
                    answer = connection.getresponse()
                    answer.read()
                    if answer.status == 202:
                        mine.latencies.append(time.monotonic() - sent)
                        mine.sent_at.append(sent - started)
                        break
                    raise OSError(f"answer {answer.status}")
                except (OSError, http.client.HTTPException):
                    mine.failed_attempts += 1
                    if connection is not None:
                        connection.close()
                    connection = None
                    time.sleep(0.2)
            mine.batches += 1
            mine.records += BATCH_RECORDS
            seq += 1
            next_at += interval
        if connection is not None:
            connection.close()

    stop = multiprocessing.Event()
    out = multiprocessing.Queue()
    reader = multiprocessing.Process(target=analyst, args=(str(warehouse.catalog_path), stop, out))
    reader.start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    restart_s = None
    if kill_at is not None:
        time.sleep(max(0.0, started + kill_at - time.monotonic()))
        process.kill()  # SIGKILL
        process.wait()
        killed = time.monotonic()
        process, state["port"] = start_server(env, log)
        restart_s = time.monotonic() - killed
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    time.sleep(3)  # the last publish
    stop.set()
    seen = out.get(timeout=60)
    reader.join()
    process.terminate()
    process.wait(timeout=30)

    sent_records = sum(s.records for s in stats)
    with store._reader.connect() as con:  # the benchmark's own check
        stored, distinct = con.exec_driver_sql(
            "SELECT count(*), count(DISTINCT record_key || '|' || start_us) FROM landing_records "
            "WHERE integration_id = 'push_bench'"
        ).one()
    live = int(warehouse.query("SELECT count(*) AS n FROM agent_status_live")["n"][0])
    latencies = sorted(x for s in stats for x in s.latencies)
    steady = sorted(
        x
        for s in stats
        for x, at in zip(s.latencies, s.sent_at, strict=True)
        if kill_at is None or abs(at - kill_at) > 5
    )
    store.dispose()
    return {
        "clients": clients,
        "seconds": wall,
        "records_sent": sent_records,
        "records_per_s": sent_records / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "p99_steady_ms": 1000 * steady[int(0.99 * (len(steady) - 1))],
        "max_ms": 1000 * latencies[-1],
        "requests": len(latencies),
        "failed_attempts": sum(s.failed_attempts for s in stats),
        "restart_s": restart_s,
        "lost": sent_records - distinct,
        "duplicated": stored - distinct,
        "live_rows": live,
        "analyst": seen,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--folder", default=str(ROOT / "bench" / "work" / "push"))
    parser.add_argument("--no-kill", action="store_true")
    args = parser.parse_args(argv)
    result = run(
        args.clients,
        args.seconds,
        args.rate,
        Path(args.folder),
        None if args.no_kill else args.seconds / 2,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
