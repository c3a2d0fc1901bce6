"""A long-lived TCP client that reads a byte stream and reconnects when it breaks.

On-premise ACDs push real-time events over a plain TCP connection that they expect a client
to keep open for months. The connection breaks (ACD restarts, network changes, idle
firewalls), so the reader:

- connects with a timeout, and after a failure or a drop waits an exponential backoff with
  jitter (`initial_s * 2**n` capped at `max_s`, half of it random) before the next attempt;
  the backoff starts over once a connection has delivered data;
- treats a connection that delivered nothing for `idle_timeout_s` as dead (a half-open TCP
  connection never reports itself) and reconnects;
- calls `handler.tick()` after every read and at least every `poll_s` (heartbeats, flushing),
  and notices `stop` within `poll_s`;
- hands every chunk it reads to `handler.received(data)`, as it arrived: framing records is
  the handler's job (see `framing.py`).

Standard library sockets: the reader is one blocking loop in one thread, which is all a single
stream needs, and every wait is bounded so that a stop request is honoured within `poll_s`.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class StreamHandler(Protocol):
    def connected(self, peer: str) -> None: ...
    def received(self, data: bytes) -> None: ...
    def tick(self) -> None: ...
    def disconnected(self, reason: str) -> None: ...


@dataclass
class Backoff:
    """Waits between connection attempts: exponential, capped, half of it random."""

    initial_s: float = 1.0
    max_s: float = 60.0
    rand: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.initial_s * 2 ** max(attempt - 1, 0))
        return ceiling / 2 + self.rand() * ceiling / 2


@dataclass
class TcpStream:
    """Reads `host:port` until `stop` is set, reconnecting as needed."""

    host: str
    port: int
    handler: StreamHandler
    stop: threading.Event
    where: str  # names the integration and the peer in every message
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 120.0
    poll_s: float = 1.0
    backoff: Backoff = field(default_factory=Backoff)
    connections: int = 0  # successful connections so far

    def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(
                    (self.host, self.port), timeout=self.connect_timeout_s
                )
            except OSError as exc:
                attempt += 1
                self._wait(attempt, f"cannot connect to {self.host}:{self.port}: {exc}")
                continue
            self.connections += 1
            delivered = self._read(sock)
            attempt = 1 if delivered else attempt + 1
            if not self.stop.is_set():
                self._wait(attempt, "reconnecting")

    def _read(self, sock: socket.socket) -> bool:
        """Read one connection until it ends; True when it delivered any data."""
        delivered = False
        reason = "stopped"
        with sock:
            sock.settimeout(self.poll_s)
            self.handler.connected(f"{self.host}:{self.port}")
            last_data = time.monotonic()
            while not self.stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    self.handler.tick()  # also after data, below: a busy stream needs ticks too
                    if time.monotonic() - last_data > self.idle_timeout_s:
                        reason = f"no data for {self.idle_timeout_s:g} s (source.idle_timeout_s)"
                        break
                    continue
                except OSError as exc:
                    reason = f"connection lost: {exc}"
                    break
                if not data:
                    reason = "closed by the peer"
                    break
                delivered = True
                last_data = time.monotonic()
                self.handler.received(data)
                self.handler.tick()
            self.handler.disconnected(reason)
        return delivered

    def _wait(self, attempt: int, why: str) -> None:
        pause = self.backoff.delay(attempt)
        log.warning("%s: %s; next attempt in %.1f s", self.where, why, pause)
        self.stop.wait(pause)
