"""Where the ingestion service reads and writes, and its view of the integrations file.

Kept apart from the app (pandas, pandera, Starlette) so that `wfm-etl serve` can start its
live-view publisher before it loads them: both load their modules at the same time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from etl.config import PROJECT_ROOT, ConfigError, Integration, Settings, load_integrations
from etl.ingest.store import landing_url

log = logging.getLogger(__name__)
PUSH_VENDOR = "api"
CONFIG_CHECK_S = 1.0
PUBLISH_ENV = "WFM_API_PUBLISH"


@dataclass(frozen=True)
class ServiceSettings:
    """Where the service reads and writes. From the environment when the app is created."""

    integrations_path: Path
    warehouse_dir: Path
    landing_url: str
    lock_dir: Path
    publish: bool = True  # run the live-view publisher in this process
    publish_interval_s: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        home = Path(env.get("WFM_HOME", PROJECT_ROOT))
        project = Settings.from_env(env)  # the same files as the Dagster project's
        return cls(
            integrations_path=project.integrations_path,
            warehouse_dir=project.warehouse_dir,
            landing_url=landing_url(env, home),
            lock_dir=home / "data" / "landing" / "locks",
            publish=env.get(PUBLISH_ENV, "1") != "0",
            publish_interval_s=float(env.get("WFM_API_PUBLISH_INTERVAL_S", "1.0")),
        )


class Integrations:
    """The integrations file, read again when it changes (checked at most once a second), so
    pausing, resuming, adding or removing an integration needs no restart. Only the
    integrations' own fields are checked here (`check_sources=False`): the service reads no
    source, and a restarted server answers a second sooner without loading every vendor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._checked = 0.0
        self._current: dict[str, Integration] = {}
        self.get()

    def get(self) -> dict[str, Integration]:
        with self._lock:
            if time.monotonic() - self._checked < CONFIG_CHECK_S:
                return self._current
            self._checked = time.monotonic()
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != self._mtime or not self._current:
                try:
                    self._current = {
                        i.id: i for i in load_integrations(self.path, check_sources=False)
                    }
                    self._mtime = mtime
                except ConfigError as exc:
                    if not self._current:
                        raise
                    log.error("integrations file not reloaded, keeping the last good one: %s", exc)
            return self._current
