"""The HTTP ingestion service (`wfm-etl serve`): Starlette on uvicorn.

    POST /v1/integrations/{id}/contact-events   contact data per queue, channel and interval
    POST /v1/integrations/{id}/agent-statuses   agent status segments
    GET  /v1/health                             liveness (no key needed)
    GET  /openapi.json                          the OpenAPI document (docs/api/openapi.json)

Every request is authenticated with the integration's API key (`Authorization: Bearer`),
size-checked while it is read, validated with the tables' pandera schemas and landed before
it is answered: a 2xx means the batch is committed to the landing store (fsynced). Requests
that arrive together are landed together (group commit): one validation pass and one
transaction (one fsync) for all of them, so the cost per request stays small under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from etl.config import PROJECT_ROOT, ConfigError, Integration, load_integrations
from etl.ingest import payloads
from etl.ingest.keys import bearer_key, key_hash
from etl.ingest.landing import MAX_RECORDS, Landing, LandResult, Pending
from etl.ingest.publisher import LivePublisher
from etl.ingest.store import LandingStore, landing_url
from etl.resources.warehouse import Warehouse

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 2**20  # 10,000 contact events are about 2.5 MiB
MAX_BATCH_ID = 200
PUSH_VENDOR = "api"
CONFIG_CHECK_S = 1.0
PUBLISH_ENV = "WFM_API_PUBLISH"
# A group commit takes at most this many records: a burst of big batches is landed in a few
# transactions instead of one huge one.
GROUP_RECORDS = 20_000
# How often the server copies the landing store's WAL into its database file (SQLite).
CHECKPOINT_EVERY_S = 1.0


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
        return cls(
            integrations_path=Path(env.get("WFM_INTEGRATIONS", home / "integrations.yaml")),
            warehouse_dir=Path(env.get("WFM_WAREHOUSE_DIR", home / "data" / "warehouse")),
            landing_url=landing_url(env, home),
            lock_dir=home / "data" / "landing" / "locks",
            publish=env.get(PUBLISH_ENV, "1") != "0",
            publish_interval_s=float(env.get("WFM_API_PUBLISH_INTERVAL_S", "1.0")),
        )


class Integrations:
    """The integrations file, read again when it changes (checked at most once a second), so
    pausing, resuming, adding or removing an integration needs no restart."""

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
                    self._current = {i.id: i for i in load_integrations(self.path)}
                    self._mtime = mtime
                except ConfigError as exc:
                    if not self._current:
                        raise
                    log.error("integrations file not reloaded, keeping the last good one: %s", exc)
            return self._current


class GroupCommitter:
    """Lands the requests waiting at the same moment in one go (see the module)."""

    def __init__(self, landing: Landing) -> None:
        self.landing = landing
        self.queue: asyncio.Queue[tuple[Pending, asyncio.Future]] = asyncio.Queue()

    async def submit(self, pending: Pending) -> LandResult:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((pending, future))
        return await future

    async def run(self) -> None:
        while True:
            items = [await self.queue.get()]
            records = len(items[0][0].records)
            while not self.queue.empty() and records < GROUP_RECORDS:
                item = self.queue.get_nowait()
                items.append(item)
                records += len(item[0].records)
            try:
                results = await run_in_threadpool(
                    self.landing.land_pending, [pending for pending, _ in items]
                )
            except Exception as exc:
                log.exception("landing %d batch(es) failed; none was acknowledged", len(items))
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(items, results, strict=True):
                if not future.done():
                    future.set_result(result)


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class IngestService:
    """The service's state: config, landing store, group committer, live publisher."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.integrations = Integrations(settings.integrations_path)
        self.store = LandingStore(settings.landing_url, background_checkpoints=True)
        self.store.create()
        self.landing = Landing(self.store, self.integrations.get())
        self.committer: GroupCommitter | None = None
        self.publisher: LivePublisher | None = None
        if settings.publish:
            self.publisher = LivePublisher(
                self.store,
                Warehouse(root=str(settings.warehouse_dir)),
                self.integrations.get,
                settings.lock_dir,
                min_interval_s=settings.publish_interval_s,
            )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.committer = GroupCommitter(self.landing)
        task = asyncio.create_task(self.committer.run())
        checkpoints = asyncio.create_task(self._checkpoints())
        if self.publisher is not None:
            self.publisher.start()
        try:
            yield
        finally:
            task.cancel()
            checkpoints.cancel()
            if self.publisher is not None:
                self.publisher.stop()
            self.store.dispose()

    async def _checkpoints(self) -> None:
        """Checkpoint the SQLite WAL off the request path (see LandingStore)."""
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except Exception:  # the next one tries again; commits go on meanwhile
                log.exception("checkpointing the landing store failed")

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "landing_store": self.store.where.split(":")[0]})

    async def openapi(self, _request: Request) -> Response:
        from etl.ingest.openapi import openapi_document

        return JSONResponse(openapi_document())

    async def push(self, request: Request) -> Response:
        path_kind = request.url.path.rsplit("/", 1)[-1]
        kind = payloads.KIND_OF_PATH[path_kind]
        integration_id = request.path_params["integration_id"]
        key = bearer_key(request.headers.get("authorization"))
        challenge = {"WWW-Authenticate": 'Bearer realm="wfm-etl"'}
        if key is None:
            return error(401, "missing API key: send 'Authorization: Bearer <key>'", **challenge)
        owner = await run_in_threadpool(self.store.integration_of_key, key_hash(key))
        if owner is None:
            return error(401, "unknown or revoked API key", **challenge)
        if owner != integration_id:
            return error(
                403, f"this API key belongs to another integration, not {integration_id!r}"
            )
        integration = self.integrations.get().get(integration_id)
        self.landing.integrations = self.integrations.get()
        if integration is None:
            return error(404, f"no integration {integration_id!r} in the config")
        if integration.vendor != PUSH_VENDOR:
            return error(
                404,
                f"integration {integration_id!r} is not a push integration (vendor: {PUSH_VENDOR})",
            )
        if kind not in integration.data:
            return error(
                404,
                f"integration {integration_id!r} carries no {kind} data "
                "(its `data:` in the config)",
            )
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        try:
            data, meta = payloads.records_of(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(400, f"the body is not valid JSON: {exc}")
        except payloads.BodyError as exc:
            return error(400, str(exc))
        if len(data) > MAX_RECORDS:
            return error(413, f"a batch holds at most {MAX_RECORDS} records (got {len(data)})")
        batch_id = request.headers.get("idempotency-key") or meta.get("batchId")
        if batch_id is not None and (
            not isinstance(batch_id, str) or not batch_id.strip() or len(batch_id) > MAX_BATCH_ID
        ):
            return error(
                400,
                f"Idempotency-Key / meta.batchId must be a non-empty string of "
                f"at most {MAX_BATCH_ID} characters",
            )
        records, refused = payloads.MAPPERS[path_kind](data)
        pending = self.landing.pending(
            integration_id,
            kind,
            records,
            idempotency_key=batch_id,
            source=f"POST {request.url.path}",
            refused=refused,
            raw=data,
        )
        assert self.committer is not None
        try:
            result = await self.committer.submit(pending)
        except Exception as exc:
            return error(
                503, f"the landing store is unavailable, nothing was landed: {type(exc).__name__}"
            )
        headers = {"Idempotency-Replayed": "true"} if result.replayed else None
        return JSONResponse(result.body(), status_code=result.status_code, headers=headers)


async def read_body(request: Request) -> bytes | Response:
    """The body, or 413 as soon as it passes MAX_BODY_BYTES (never read whole first)."""
    declared = request.headers.get("content-length")
    too_big = error(
        413,
        f"the body is larger than {MAX_BODY_BYTES} bytes; send smaller batches "
        f"(at most {MAX_RECORDS} records)",
    )
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: ServiceSettings | None = None) -> Starlette:
    """The ASGI app (uvicorn calls this factory in each worker process)."""
    service = IngestService(settings or ServiceSettings.from_env())
    routes = [
        Route("/v1/health", service.health, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        Route(
            f"/v1/integrations/{{integration_id}}/{payloads.CONTACT_EVENTS}",
            service.push,
            methods=["POST"],
        ),
        Route(
            f"/v1/integrations/{{integration_id}}/{payloads.AGENT_STATUSES}",
            service.push,
            methods=["POST"],
        ),
    ]
    app = Starlette(routes=routes, lifespan=service.lifespan)
    app.state.service = service
    return app


def now() -> datetime:
    return datetime.now(UTC)
