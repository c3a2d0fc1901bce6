"""`wfm-etl serve` and `wfm-etl api-key`: the ingestion service's command-line side."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

from etl.config import ConfigError, load_integrations
from etl.ingest.keys import issue_key
from etl.ingest.settings import PUBLISH_ENV, PUSH_VENDOR, Integrations, ServiceSettings
from etl.ingest.store import LandingStore, from_us

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088
PORT_ENV = "WFM_API_PORT"
# On SIGTERM, requests still running get this long before they are cancelled (a cancelled
# one was not acknowledged, so its client sends it again); the publisher as long to stop.
GRACEFUL_SHUTDOWN_S = 10
PUBLISHER_STOP_S = 10
PUBLISHER_NICE = 5


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The `serve` and `api-key` subcommands."""
    serve = sub.add_parser("serve", help="run the ingestion service (push API, live views)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(PORT_ENV, DEFAULT_PORT)),
        help=f"default {DEFAULT_PORT} (or {PORT_ENV})",
    )
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log every request (under load)"
    )
    keys = sub.add_parser("api-key", help="create, rotate or show a push integration's API key")
    keys.add_argument("action", choices=["create", "rotate", "show"])
    keys.add_argument("integration")


def publisher_process(parent_pid: int, stop: Event) -> None:
    """The live-view publisher in a process of its own (off the server's GIL). It ends when
    the server sets `stop` on its way out, or when the server process is gone (`kill -9`)."""
    import signal

    from etl.ingest.publisher import LivePublisher
    from etl.resources.warehouse import Warehouse

    # A signal disposition inherited from whoever started the server (SIGTERM ignored, say)
    # must not keep this child alive: the server stops it, SIGTERM ends it, Ctrl-C in a
    # terminal reaches the server, which stops it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The server's answers come first when the two compete for a core (a restart, a burst):
    # the live views have seconds to follow, a request's answer milliseconds.
    with contextlib.suppress(OSError):
        os.nice(PUBLISHER_NICE)
    settings = ServiceSettings.from_env()
    service_integrations = Integrations(settings.integrations_path)
    publisher = LivePublisher(
        LandingStore(settings.landing_url),
        Warehouse(root=str(settings.warehouse_dir)),
        service_integrations.get,
        settings.lock_dir,
        min_interval_s=settings.publish_interval_s,
    )
    publisher.start()
    while os.getppid() == parent_pid and not stop.wait(0.2):
        pass
    publisher.stop()


def stop_publisher(publisher: BaseProcess, stop: Event) -> None:
    """Ask the publisher to finish its current publish and end; kill it if it does not within
    PUBLISHER_STOP_S (a publish is atomic, so a killed one leaves the last one in place)."""
    stop.set()
    publisher.join(PUBLISHER_STOP_S)
    if publisher.is_alive():
        publisher.kill()
        publisher.join()


def serve_command(args: argparse.Namespace) -> int:
    import multiprocessing

    import uvicorn

    settings = ServiceSettings.from_env()
    # A bad config fails here, not per request (the integrations' fields: see Integrations).
    load_integrations(settings.integrations_path, check_sources=False)
    print(
        f"wfm-etl ingestion service on http://{args.host}:{args.port} "
        f"(landing store: {LandingStore(settings.landing_url).where}; "
        f"OpenAPI: http://{args.host}:{args.port}/openapi.json)",
        flush=True,
    )
    if settings.publish:  # one publisher beside all workers; the workers only land
        # Forked (where the system can) before this process loads the app, so that the two
        # load their modules at the same time on different cores (a spawned child would start
        # a new interpreter as well); there is no thread or connection to inherit yet.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        stop = context.Event()
        publisher = context.Process(
            target=publisher_process, args=(os.getpid(), stop), name="live-publisher", daemon=True
        )
        publisher.start()
        os.environ[PUBLISH_ENV] = "0"
    try:
        uvicorn.run(
            "etl.ingest.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=not args.no_access_log,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    finally:
        if settings.publish:
            stop_publisher(publisher, stop)
    return 0


def main(argv: list[str]) -> int:
    """`wfm-etl serve|api-key ...` on their own (etl/__main__.py); `wfm-etl --help` lists them
    with every other command."""
    parser = argparse.ArgumentParser(prog="wfm-etl")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve_command(args)
        return api_key_command(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def api_key_command(args: argparse.Namespace) -> int:
    settings = ServiceSettings.from_env()
    integrations = {i.id: i for i in load_integrations(settings.integrations_path)}
    integration = integrations.get(args.integration)
    if integration is None or integration.vendor != PUSH_VENDOR:
        push = ", ".join(sorted(i for i, x in integrations.items() if x.vendor == PUSH_VENDOR))
        raise ConfigError(
            f"no push integration (vendor: {PUSH_VENDOR}) {args.integration!r} in the config "
            f"(push integrations: {push or 'none'})"
        )
    store = LandingStore(settings.landing_url)
    info = store.key_info(integration.id)
    if args.action == "show":
        if info is None:
            print(f"{integration.id}: no API key (create one with `wfm-etl api-key create`)")
        else:
            print(f"{integration.id}: key {info[0]} created {from_us(info[1]):%Y-%m-%d %H:%M} UTC")
        return 0
    if args.action == "create" and info is not None:
        print(
            f"error: {integration.id} already has an API key ({info[0]}, created "
            f"{from_us(info[1]):%Y-%m-%d %H:%M} UTC); `wfm-etl api-key rotate "
            f"{integration.id}` replaces it",
            file=sys.stderr,
        )
        return 1
    key = issue_key(store, integration.id)
    what = (
        "new API key"
        if args.action == "create"
        else "rotated API key (the old one no longer works)"
    )
    print(f"{integration.id}: {what}, shown only now; store it in your system's secrets:")
    print(key)
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    return 0
