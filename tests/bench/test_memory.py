"""The benchmark's memory sampler counts every process of a tree, not only the first, and
finds the same processes as psutil does."""

from __future__ import annotations

import subprocess
import sys

from tests.bench.extra import needs_bench_extra

# A parent holding 64 MiB that starts a child holding 128 MiB, both written to (resident),
# each waiting until told to end on its standard input.
HOLD = (
    "import subprocess, sys; block = bytearray({mib} << 20); "
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdin=subprocess.PIPE) "
    "if len(sys.argv) > 1 else None; print('ready', flush=True); sys.stdin.readline(); "
    "child and (child.stdin.close(), child.wait())"
)
CHILD = "import sys; block = bytearray(128 << 20); print('child', flush=True); sys.stdin.readline()"


def holding(mib: int, child: str) -> subprocess.Popen:
    """The parent of HOLD, holding `mib` MiB, with `child` as its child's code."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLD.format(mib=mib), child],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_the_peak_covers_the_parent_and_its_child():
    needs_bench_extra("psutil")
    from bench.memory import TreeMemory, TreeSampler

    process = holding(64, CHILD)
    try:
        assert process.stdout.readline().strip() == "ready"
        assert process.stdout.readline().strip() == "child"
        memory = TreeMemory()
        with TreeSampler(process.pid, memory, interval=0.05) as sampler:
            while memory.samples < 3:
                sampler._stop.wait(0.05)
    finally:
        process.communicate("\n")
    assert memory.processes == 2
    assert memory.peak_rss_mib > 64 + 128
    assert memory.peak_pss_mib > 64 + 128
    assert memory.peak_pss_mib <= memory.peak_rss_mib


def test_descendants_are_psutils_children_grandchildren_included():
    needs_bench_extra("psutil")
    import psutil

    from bench.memory import descendants

    grandchild = "import sys; print('grandchild', flush=True); sys.stdin.readline()"
    # A child that starts the grandchild, then says so itself.
    child = (
        "import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', "
        f"{grandchild!r}], stdin=subprocess.PIPE); print('child', flush=True); "
        "sys.stdin.readline(); c.stdin.close(); c.wait()"
    )
    process = holding(1, child)
    try:
        said = {process.stdout.readline().strip() for _ in range(3)}
        assert said == {"ready", "child", "grandchild"}
        root = psutil.Process(process.pid)
        expected = sorted(p.pid for p in root.children(recursive=True))
        assert len(expected) == 2
        assert sorted(descendants(root)) == expected
    finally:
        process.communicate("\n")
