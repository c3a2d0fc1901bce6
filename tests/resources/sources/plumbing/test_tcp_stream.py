"""The reconnecting TCP reader against a real server on loopback: drops, refusals, silence."""

from __future__ import annotations

import socket
import threading
import time

from etl.resources.sources.plumbing.tcp_stream import Backoff, TcpStream
from tests.fakes.mitel import DROP, FakeAcd


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.data = b""
        self.ticks = 0

    def connected(self, peer: str) -> None:
        self.calls.append(("connected", peer))

    def received(self, data: bytes) -> None:
        self.data += data

    def tick(self) -> None:
        self.ticks += 1

    def disconnected(self, reason: str) -> None:
        self.calls.append(("disconnected", reason))


class RecordingStop(threading.Event):
    """A stop event that records the waits asked of it and waits only briefly."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(min(timeout or 0, 0.01))


def run_until(stream: TcpStream, done, timeout: float = 10.0) -> None:
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert done(), "the expected state was not reached in time"


def test_backoff_doubles_to_its_ceiling_with_half_of_it_random():
    low = Backoff(initial_s=1, max_s=8, rand=lambda: 0.0)
    high = Backoff(initial_s=1, max_s=8, rand=lambda: 1.0)
    assert [low.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    assert [high.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


def test_a_refused_connection_is_retried_with_growing_waits():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there
    stop = RecordingStop()
    stream = TcpStream(
        "127.0.0.1", port, Recorder(), stop, "test", backoff=Backoff(1, 16, rand=lambda: 1.0)
    )
    run_until(stream, lambda: len(stop.waits) >= 6)
    assert stop.waits[:6] == [1, 2, 4, 8, 16, 16]
    assert stream.connections == 0


def test_a_dropped_connection_is_read_again_after_a_reconnect():
    with FakeAcd([[b"abc", b"de", DROP], [b"fgh"]]) as acd:
        recorder = Recorder()
        stop = RecordingStop()
        stream = TcpStream(
            "127.0.0.1", acd.port, recorder, stop, "test", poll_s=0.05, backoff=Backoff(0.01, 0.1)
        )
        run_until(stream, lambda: recorder.data == b"abcdefgh")
    assert stream.connections == 2
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["connected", "disconnected", "connected", "disconnected"]
    reset = "connection lost: [Errno 104] Connection reset by peer"
    assert recorder.calls[1][1] in ("closed by the peer", reset)
    assert recorder.calls[3] == ("disconnected", "stopped")
    assert recorder.ticks > 0


def test_a_silent_connection_is_given_up_and_opened_again():
    with FakeAcd([[], [b"late"]]) as acd:
        recorder = Recorder()
        stream = TcpStream(
            "127.0.0.1",
            acd.port,
            recorder,
            RecordingStop(),
            "test",
            idle_timeout_s=0.3,
            poll_s=0.05,
            backoff=Backoff(0.01, 0.1),
        )
        run_until(stream, lambda: recorder.data == b"late")
    assert recorder.calls[1] == ("disconnected", "no data for 0.3 s (source.idle_timeout_s)")
    assert stream.connections == 2
