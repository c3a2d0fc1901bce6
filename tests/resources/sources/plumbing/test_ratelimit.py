"""Client-side request spacing, on a fixed clock."""

from __future__ import annotations

import pytest

from etl.resources.sources.plumbing.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_requests_are_spaced_by_one_over_the_rate():
    clock = Clock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.wait()
    assert clock.slept == [0.25, 0.25, 0.25, 0.25]  # the first goes at once
    assert limiter.waited_s == pytest.approx(1.0)


def test_time_spent_elsewhere_counts_towards_the_next_slot():
    clock = Clock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.now += 0.7  # the request itself took 0.7 s
    limiter.wait()
    clock.now += 2.0  # a long pause: no credit is saved up for a burst
    limiter.wait()
    limiter.wait()
    assert clock.slept == [0.3, 1.0]


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
