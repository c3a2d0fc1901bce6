"""The real ingestion service as a process on loopback, and a small HTTP client for it.

Tests drive `wfm-etl serve` itself (no test client): it binds port 0 on 127.0.0.1 and the
port is read from uvicorn's start-up line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from etl.ingest.keys import issue_key
from etl.ingest.store import LandingStore, default_url
from etl.resources.warehouse import Warehouse

PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


def push_integration(**overrides) -> dict:
    fields = {
        "id": "push_berlin",
        "vendor": "api",
        "delivery": "cloud",
        "interval_minutes": 15,
        "data": ["contacts", "agent_status"],
        "timezone": "Europe/Berlin",
        "history_start": "2026-11-01",
        "max_rejected_share": 1.0,
    }
    fields.update(overrides)
    return fields


@dataclass
class Home:
    """A project home for the service: config, warehouse, mappings, landing store."""

    root: Path
    landing_url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WFM_HOME": str(self.root),
            "WFM_INTEGRATIONS": str(self.root / "integrations.yaml"),
            "WFM_WAREHOUSE_DIR": str(self.root / "warehouse"),
            "WFM_MAPPINGS_DIR": str(self.root / "mappings"),
            "WFM_LANDING_URL": self.landing_url,
            "DAGSTER_HOME": str(self.root / "dagster_home"),
        }

    def configure(self, *integrations: dict) -> None:
        path = self.root / "integrations.yaml"
        path.write_text(yaml.safe_dump({"integrations": list(integrations)}))

    def store(self) -> LandingStore:
        return LandingStore(self.landing_url)

    def key(self, integration_id: str) -> str:
        store = self.store()
        try:
            return issue_key(store, integration_id)
        finally:
            store.dispose()


def make_home(root: Path, *integrations: dict, landing_url: str | None = None) -> Home:
    (root / "mappings").mkdir(parents=True, exist_ok=True)
    (root / "dagster_home").mkdir(exist_ok=True)
    home = Home(root, landing_url or default_url(root))
    home.configure(*(integrations or (push_integration(),)))
    return home


class Server:
    """One `wfm-etl serve` process."""

    def __init__(
        self,
        home: Home,
        *args: str,
        env: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.home = home
        self.log = home.root / f"serve-{time.monotonic_ns()}.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "etl", "serve", "--port", "0", *args],
            env={**home.env, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        """With several workers the port is bound before they serve: wait for an answer."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server never answered:\n{self.output}")

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = PORT_LINE.search(self.log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not start:\n{self.log.read_text(errors='replace')}")

    def kill(self) -> None:
        """kill -9: no shutdown, no flushing, nothing."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: a server that does not end within
        STOP_TIMEOUT_S is killed and the test fails (it would hang a deployment's stop)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self._log.close()
                raise AssertionError(
                    f"the server did not stop within {STOP_TIMEOUT_S} s of SIGTERM:\n"
                    f"{self.output[-2000:]}"
                ) from None
        self._log.close()

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


def warehouse_of(home: Home) -> Warehouse:
    """The warehouse the home's server publishes its live views to."""
    return Warehouse(root=str(home.root / "warehouse"))


@contextmanager
def running(home: Home, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    server = Server(home, *args, env=env)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict[str, str]


def post(
    url: str,
    path: str,
    body: dict | bytes | None,
    key: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Reply(answer.status, json.loads(answer.read()), dict(answer.headers))
    except urllib.error.HTTPError as answer:
        return Reply(answer.code, json.loads(answer.read() or b"{}"), dict(answer.headers))


def get(url: str, path: str) -> Reply:
    with urllib.request.urlopen(url + path, timeout=30) as answer:
        return Reply(answer.status, json.loads(answer.read()), dict(answer.headers))


def statuses_path(integration_id: str = "push_berlin") -> str:
    return f"/v1/integrations/{integration_id}/agent-statuses"


def contacts_path(integration_id: str = "push_berlin") -> str:
    return f"/v1/integrations/{integration_id}/contact-events"


def status(agent: str, activity: str, start: datetime, end: datetime | None = None) -> dict:
    record = {
        "agentIdentifier": agent,
        "activityIdentifier": activity,
        "startTime": start.isoformat(),
    }
    if end is not None:
        record["endTime"] = end.isoformat()
    return record


def contact(
    queue: str,
    channel: str,
    start: datetime,
    offered: int,
    handled: int,
    abandoned: int,
    duration: float,
) -> dict:
    return {
        "queueIdentifier": queue,
        "queueName": queue.title(),
        "channel": channel,
        "timestamp": start.isoformat(),
        "properties": {
            "offered": offered,
            "handled": handled,
            "abandoned": abandoned,
            "duration": duration,
        },
    }


# Pushed records show in the live views within this long (the issue's promise).
LIVE_WITHIN_S = 5.0


def wait_for(read, expected, timeout: float = LIVE_WITHIN_S * 2) -> float:
    """Seconds until `read()` returns `expected` (fails after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if read() == expected:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout} s: {read()!r} != {expected!r}")
