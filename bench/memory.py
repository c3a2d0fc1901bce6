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

import os
import threading
import time
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
    cpu_s: float = 0.0  # the sampler's own CPU: it shares the cores with what it measures

    @property
    def processes(self) -> int:
        return len(self.pids)


def sample(root: psutil.Process, into: TreeMemory, pss: bool = True) -> None:
    """Add one sample of `root` and its descendants (processes that end meanwhile are
    skipped: they hold no memory any more); PSS only when `pss` (see TreeSampler)."""
    rss_sum = pss_sum = 0
    for pid in [root.pid, *descendants(root)]:
        try:
            process = root if pid == root.pid else psutil.Process(pid)
            info = process.memory_full_info() if pss else process.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss_sum += info.rss
        pss_sum += getattr(info, "pss", info.rss)
        into.pids.add(process.pid)
    into.samples += 1
    into.peak_rss_mib = max(into.peak_rss_mib, rss_sum / MIB)
    if pss:
        into.peak_pss_mib = max(into.peak_pss_mib, pss_sum / MIB)


# The kernel lists each thread's children where it was built with CONFIG_PROC_CHILDREN.
CHILDREN_LISTED = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def descendants(root: psutil.Process) -> list[int]:
    """The processes below `root`, from the kernel's list of each thread's children: psutil's
    `children(recursive=True)` reads every process of the machine instead (5 ms a sample
    with some 80 processes running, a database server's among them), which stays the way
    where the kernel keeps no such list."""
    if not CHILDREN_LISTED:
        try:
            return [child.pid for child in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    found: list[int] = []
    pending = [root.pid]
    while pending:
        parent = pending.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:  # ended meanwhile
            continue
        for thread in threads:
            try:
                with open(f"/proc/{parent}/task/{thread}/children") as listed:
                    children = [int(child) for child in listed.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            found += children
            pending += children
    return found


class TreeSampler:
    """Samples process `pid`'s tree into `memory` every `interval` seconds, in a thread,
    until stopped: RSS every time, PSS every `pss_every`-th time. Reading PSS makes the kernel
    walk each process's page tables (`smaps_rollup`): every 0.2 s over a history import's
    processes it took a fifth of a core from the import it measured."""

    def __init__(self, pid: int, memory: TreeMemory, interval: float = 0.2, pss_every: int = 5):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.pss_every = pss_every
        self.memory = memory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        taken = 0
        started = time.thread_time()
        while not self._stop.is_set():
            sample(self.root, self.memory, pss=taken % self.pss_every == 0)
            taken += 1
            self.memory.cpu_s = time.thread_time() - started
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
