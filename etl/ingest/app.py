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
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from etl.ingest import payloads
from etl.ingest.keys import bearer_key, key_hash
from etl.ingest.landing import MAX_RECORDS, Landing, LandResult, Pending
from etl.ingest.settings import PUSH_VENDOR, Integrations, ServiceSettings
from etl.ingest.store import LandingStore

if TYPE_CHECKING:
    from etl.ingest.publisher import LivePublisher

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 2**20  # 10,000 contact events are about 2.5 MiB
MAX_BATCH_ID = 200
# A group commit takes at most this many records: a burst of big batches is landed in a few
# transactions instead of one huge one.
GROUP_RECORDS = 20_000
# How long a group commit waits for more requests after the first (see GroupCommitter.run).
GROUP_WAIT_S = 0.03
# Valid keys are remembered this long (and at most this many), see KeyCache.
KEY_CACHE_S = 30.0
KEY_CACHE_SIZE = 10_000
REVOKED = "unknown or revoked API key"
# How often the server copies the landing store's WAL into its database file (SQLite).
CHECKPOINT_EVERY_S = 1.0


class GroupCommitter:
    """Lands the requests waiting at the same moment in one go (see the module)."""

    def __init__(self, landing: Landing) -> None:
        self.landing = landing
        self.queue: asyncio.Queue[tuple[Pending, asyncio.Future]] = asyncio.Queue()
        self._concurrent = False  # did requests arrive together lately?

    async def submit(self, pending: Pending) -> LandResult:
        pending.queued_at = time.monotonic()
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((pending, future))
        return await future

    async def run(self) -> None:
        while True:
            items = [await self.queue.get()]
            records = len(items[0][0].records)
            waited = time.monotonic() - items[0][0].queued_at
            if self._concurrent and records < GROUP_RECORDS and waited < GROUP_WAIT_S:
                # A validation pass costs about 10 ms however few records it checks: while
                # requests arrive together, waiting a moment for the next ones lands them in
                # the same pass and leaves the event loop the processor in between. A
                # request that queued while the last group was landing has waited already;
                # a lone client's requests are landed at once.
                await asyncio.sleep(GROUP_WAIT_S - waited)
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
            self._concurrent = len(items) > 1 or not self.queue.empty()
            for (_, future), result in zip(items, results, strict=True):
                if not future.done():
                    future.set_result(result)


class KeyCache:
    """Key hash -> integration for keys seen valid lately, so that a request costs no lookup
    of its key. It only lets a request in: the landing transaction checks each batch's key
    again, so a key rotated meanwhile lands nothing (401)."""

    def __init__(self, ttl_s: float = KEY_CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._owners: dict[str, tuple[str, float]] = {}

    def get(self, hashed: str) -> str | None:
        found = self._owners.get(hashed)
        if found is None or time.monotonic() > found[1]:
            return None
        return found[0]

    def put(self, hashed: str, owner: str) -> None:
        if len(self._owners) > KEY_CACHE_SIZE:
            self._owners.clear()
        self._owners[hashed] = (owner, time.monotonic() + self.ttl_s)

    def forget(self, hashed: str) -> None:
        self._owners.pop(hashed, None)


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
        self.keys = KeyCache()
        self.committer: GroupCommitter | None = None
        self.publisher: LivePublisher | None = None
        if settings.publish:  # in this process (`wfm-etl serve` runs it in a child of its own)
            from etl.ingest.publisher import LivePublisher
            from etl.resources.warehouse import Warehouse

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
        await run_in_threadpool(self.warm_up)
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

    def warm_up(self) -> None:
        """Validate one made-up record of each push integration's kinds, landing nothing, before
        the first request: the first validation builds the schemas and warms pandas (50 ms
        and more), which after a restart would fall on the requests queued meanwhile."""
        at = now().replace(minute=0, second=0, microsecond=0).isoformat()
        samples = {
            payloads.CONTACT_EVENTS: {
                "queueIdentifier": "warm-up",
                "queueName": "warm-up",
                "channel": "calls",
                "timestamp": at,
                "properties": {"offered": 0, "handled": 0, "abandoned": 0, "duration": 0},
            },
            payloads.AGENT_STATUSES: {
                "agentIdentifier": "warm-up",
                "activityIdentifier": "warm-up",
                "startTime": at,
            },
        }
        warmed: set[tuple] = set()  # a schema per kind, grid and timezone
        for integration in self.integrations.get().values():
            if integration.vendor != PUSH_VENDOR:
                continue
            for path, sample in samples.items():
                kind = payloads.KIND_OF_PATH[path]
                schema = (kind, integration.interval_minutes, integration.timezone)
                if kind not in integration.data or schema in warmed:
                    continue
                warmed.add(schema)
                records, refused = payloads.MAPPERS[path]([sample])
                try:
                    self.landing.prepare(
                        [self.landing.pending(integration.id, kind, records, refused=refused)]
                    )
                except Exception:  # only a warm-up: the first request does it for real
                    log.debug("warming up %s %s failed", integration.id, kind, exc_info=True)

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
        hashed = key_hash(key)
        owner = self.keys.get(hashed)
        if owner is None:
            owner = await run_in_threadpool(self.store.integration_of_key, hashed)
        if owner is None:
            return error(401, REVOKED, **challenge)
        self.keys.put(hashed, owner)
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
            key_hash=hashed,
        )
        assert self.committer is not None
        try:
            result = await self.committer.submit(pending)
        except Exception as exc:
            return error(
                503, f"the landing store is unavailable, nothing was landed: {type(exc).__name__}"
            )
        if result.revoked:  # rotated while the request was on its way: nothing landed
            self.keys.forget(hashed)
            return error(401, REVOKED, **challenge)
        headers = {"Idempotency-Replayed": "true"} if result.replayed else None
        return JSONResponse(result.body(), status_code=result.status_code, headers=headers)


async def read_body(request: Request) -> bytes | Response:
    """The body, or 413 as soon as it passes MAX_BODY_BYTES (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_big()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return _too_big()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big() -> JSONResponse:
    return error(
        413,
        f"the body is larger than {MAX_BODY_BYTES} bytes; send smaller batches "
        f"(at most {MAX_RECORDS} records)",
    )


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
