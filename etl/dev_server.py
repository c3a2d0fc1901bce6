"""`wfm-etl dev` (`make dev`): the Dagster UI and daemon on a port you know.

`dagster dev` without `--port` moves to a random free port when 3000 is taken and says so in
one log line among many; with `--port` on a busy port the webserver dies and `dagster dev`
prints a stack trace. Here the port is checked first, the same way Dagster checks it: a busy
port fails at once with the port named, and once the UI answers, one line gives its URL.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from etl.config import PROJECT_ROOT

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 3000
READY_TIMEOUT_S = 300
POLL_S = 0.5


class PortBusyError(RuntimeError):
    pass


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails because something listens there (as uvicorn binds:
    with SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_port(host: str, port: int) -> None:
    if port_in_use(host, port):
        raise PortBusyError(
            f"port {port} on {host} is in use (another `make dev`, or another server): stop "
            f"it, or choose a free port with `make dev PORT=<port>` "
            f"(`wfm-etl dev --port <port>`)"
        )


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def dagster_command(host: str, port: int, workspace: Path) -> list[str]:
    dagster = Path(sys.executable).with_name("dagster")
    program = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
    return [*program, "dev", "-w", str(workspace), "--host", host, "--port", str(port)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(process: subprocess.Popen, url: str, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """True once the UI answers; False if `dagster dev` ended or the time ran out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _answers(url):
            return True
        time.sleep(POLL_S)
    return False


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workspace: Path | None = None,
    extra_args: Sequence[str] = (),
) -> int:
    """Run `dagster dev` on host:port until it ends (Ctrl-C); its exit code."""
    check_port(host, port)
    url = url_of(host, port)
    command = [*dagster_command(host, port, workspace or PROJECT_ROOT / "workspace.yaml")]
    command += list(extra_args)
    print(f"Starting the Dagster UI on {url} ...", flush=True)
    process = subprocess.Popen(command, env=os.environ.copy())
    try:
        if wait_ready(process, url):
            print(
                f"Dagster UI: {url}  (the schedules and gap sensors are on: every "
                "integration's history is being imported; Ctrl-C stops)",
                flush=True,
            )
        return process.wait()
    except KeyboardInterrupt:  # the terminal sent it to dagster dev as well: let it finish
        return process.wait()
