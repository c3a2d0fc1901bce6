"""Files written once: atomic creation under a name no reader has seen, per-file locks, and
whether a DuckDB connection holds a catalog file open.

DuckDB opens a Parquet file by name again when a scan starts, after it read the footer, so a
file renamed over another between the two reads is read at the old footer's offsets. The
warehouse therefore never replaces a file a reader may know: every version of its data gets a
name of its own (`write_new`), and only the small state files the project's own processes
read (`replace_atomically`) are replaced under the same name. Temporary files are named
`.tmp-*` so no listing of data files ever picks one up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive advisory lock: one writer per target across processes."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def try_lock(lock_path: Path) -> IO[bytes] | None:
    """Take the exclusive lock if no one holds it; the open handle holds it until closed."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+b")  # noqa: SIM115 - the caller closes it to release the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_beside(target: Path) -> Path:
    return target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.part"


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path (a new file's directory entry is data too)."""
    fsync_dir(path)


def replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file beside `target`, fsync it, rename it into place.
    For files only the project's processes read (state, indexes): they open it once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(target)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_new(target: Path, write: Callable[[Path], None]) -> None:
    """Create `target`, which must not exist, with what `write(tmp)` puts in a temporary file
    beside it: fsynced, then linked under its name, so the name appears with its whole content
    or not at all, and never names anything else."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(target)
    try:
        write(tmp)
        _fsync(tmp)
        os.link(tmp, target)  # fails if the name exists: a name is never reused
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def open_in_this_process(path: Path) -> bool:
    """Whether this process has `path` open (Linux: its descriptors in /proc/self/fd). A
    DuckDB connection keeps its database file open; checking its lock from the same process
    would close a descriptor of the file and so drop the connection's own lock."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return False
    try:
        wanted = path.resolve()
        target_stat = wanted.stat()
    except OSError:
        return False
    for entry in fd_dir.iterdir():
        try:
            if Path(os.readlink(entry)) == wanted:
                return True
            st = entry.stat()
        except OSError:
            continue
        if st.st_ino == target_stat.st_ino and st.st_dev == target_stat.st_dev:
            return True
    return False


@contextlib.contextmanager
def duckdb_files_locked(paths: Iterable[Path]) -> Iterator[list[Path]]:
    """Take DuckDB's own lock (a POSIX record lock on the whole file) on each of `paths`, so
    no DuckDB connection to any of them is open and none opens until the block ends: DuckDB
    refuses a new connection with "Could not set lock on file". Yields the files another
    process holds open, or this process itself (see `open_in_this_process`); if there are
    any, nothing is locked. Files that do not exist are skipped."""
    held: list[int] = []
    busy: list[Path] = []
    try:
        for path in paths:
            if open_in_this_process(path):
                busy.append(path)
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                busy.append(path)
                continue
            held.append(fd)
        if busy:
            for fd in held:
                os.close(fd)
            held.clear()
        yield busy
    finally:
        for fd in held:
            os.close(fd)


def append_durably(path: Path, data: bytes) -> None:
    """Append `data` and make it survive a crash: fsync the file, and the folder when the file
    is new (its directory entry is data too). A torn line left by an earlier crash is cut off
    first, so it cannot merge with this one."""
    new = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _drop_torn_tail(fd)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_path(path.parent)


def _drop_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep = os.pread(fd, size, 0).rfind(b"\n") + 1
    os.ftruncate(fd, keep)
