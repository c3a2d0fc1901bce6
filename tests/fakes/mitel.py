"""A fake Mitel MiVoice Business ACD real-time port: a real TCP server on loopback.

Each accepted connection plays one script: byte chunks sent as given (so a test decides where
TCP cuts records: a record split over two chunks, several records in one), pauses, and
`DROP`, which closes the connection at once, wherever the script is (e.g. in the middle of a
record). After its script a connection stays open until the server stops, as the ACD's does.
Connections beyond the scripts get an empty script.

Records follow the real-time format of MiContact Center KB 51046: STX, REC NUM (2), FUNCTION
(1), TIME (HHMMSS), DIRECTORY NUMBER (7), AGENT ID (7), BUTTON NUMBER, then further fields.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from datetime import datetime

DROP = object()
STX = b"\x02"
CRLF = b"\r\n"


def acd_record(
    sequence: int,
    code: str,
    at: datetime,
    agent: str = "",
    directory_number: str = "",
    button: str = "000",
    terminator: bytes = CRLF,
) -> bytes:
    """One record as the ACD sends it (`at` in the ACD's local time)."""
    body = (
        f"{sequence % 100:02d}{code}{at:%H%M%S}{directory_number:<7}{agent:<7}{button:>3} 0000 000"
    )
    return STX + body.encode("ascii") + terminator


def refresh_record(sequence: int, terminator: bytes = CRLF) -> bytes:
    """An R (refresh reports) record: no agent, a layout of its own."""
    return STX + f"{sequence % 100:02d}R".encode("ascii") + terminator


class FakeAcd:
    """Serves `scripts[i]` to the i-th connection on 127.0.0.1 (a free port)."""

    def __init__(self, scripts: Sequence[Sequence[object]]) -> None:
        self.scripts = [list(s) for s in scripts]
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        self.connections = 0
        self.finished = threading.Event()  # set when the last scripted connection played out
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FakeAcd:
        self._accepting.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            script = self.scripts[self.connections] if self.connections < len(self.scripts) else []
            last = self.connections == len(self.scripts) - 1
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, script, last), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, script: list[object], last: bool) -> None:
        with conn:
            for step in script:
                if step is DROP:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(step, float):
                    time.sleep(step)
                    continue
                conn.sendall(step)  # type: ignore[arg-type]
                time.sleep(0.02)  # so separate chunks arrive as separate reads
            if last:
                self.finished.set()
            while not self._stop.wait(0.05):
                pass
