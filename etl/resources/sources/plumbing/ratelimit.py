"""Client-side rate limiting: at most N requests a second to one vendor, from one import.

Vendors publish request rates (UJET about 1 a second, Amazon Connect `GetMetricDataV2` 5 a
second) and answer 429 past them. Retrying a 429 after its Retry-After works, but wastes a
round trip and the vendor's patience; spacing requests keeps an import under the limit in the
first place. The limiter spaces request starts by `1 / per_second` seconds (a token bucket of
one token), shared by every thread of one client. The 429 path stays as the safety net.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    per_second: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next_at: float = field(default=float("-inf"), init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    waited_s: float = field(default=0.0, init=False)  # total time spent waiting (for logs)

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"per_second must be positive, got {self.per_second!r}")

    def wait(self) -> None:
        """Block until the next request may start, and book that slot."""
        with self._lock:
            now = self.clock()
            start = max(now, self._next_at)
            self._next_at = start + 1.0 / self.per_second
        if start > now:
            self.waited_s += start - now
            self.sleep(start - now)
