"""The memory of a process and of every process it starts, sampled while it runs.

An import is several processes: the one that creates and launches runs (the daemon's part,
with the definitions loaded once as a code server keeps them), the warm server the runs are
forked from, and the run processes. A run's own peak RSS says nothing of the others, so the
benchmark samples the whole tree with psutil (the benchmark's extra) and keeps the peak of
the sum. Two sums: RSS, which counts a page shared by forked processes once per process (an
upper bound), and PSS, which splits each shared page between the processes sharing it (the
memory the tree takes from the machine).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psutil

MIB = 2**20


@dataclass
class TreeMemory:
    """Peaks over the samples taken so far; `processes` is how many distinct ones were seen."""

    peak_rss_mib: float = 0.0
    peak_pss_mib: float = 0.0
    samples: int = 0
    pids: set[int] = field(default_factory=set)

    @property
    def processes(self) -> int:
        return len(self.pids)


def sample(root: psutil.Process, into: TreeMemory) -> None:
    """Add one sample of `root` and its descendants (processes that end meanwhile are
    skipped: they hold no memory any more)."""
    rss = pss = 0
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        try:
            info = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        into.pids.add(process.pid)
    into.samples += 1
    into.peak_rss_mib = max(into.peak_rss_mib, rss / MIB)
    into.peak_pss_mib = max(into.peak_pss_mib, pss / MIB)


class TreeSampler:
    """Samples process `pid`'s tree into `memory` every `interval` seconds, in a thread,
    until stopped."""

    def __init__(self, pid: int, memory: TreeMemory, interval: float = 0.2):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.memory = memory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample(self.root, self.memory)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
