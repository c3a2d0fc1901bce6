"""Atomic file replacement under a per-file lock, and DuckDB's own lock on catalog files.

Readers (analysts' DuckDB sessions) open files by name at query time; a rename is atomic on
POSIX, so they see either the old file or the new one, never a half-written one. Temporary
files are named `.tmp-*` so they never match the views' `*.parquet` globs. A directory whose
files are replaced by other files (a month's day files by one month file, when the month is
compacted) is swapped whole; that is only safe while no reader is listing it, which
`duckdb_files_locked` makes sure of.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive advisory lock: one writer per target file across processes."""
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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path (a new file's directory entry is data too)."""
    _fsync_dir(path)


def replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file beside `target`, fsync it, rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.part"
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # Linux renameat2 flag
_RENAME_SWAP = 2  # macOS renamex_np flag


def exchange(a: Path, b: Path) -> None:
    """Swap two directories in one atomic step, so a reader listing either path sees its old
    contents or its new contents, never a mix (Linux `renameat2(RENAME_EXCHANGE)`, macOS
    `renamex_np(RENAME_SWAP)`; both paths on the same file system)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if sys.platform == "darwin":
        result = libc.renamex_np(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
    elif hasattr(libc, "renameat2"):
        result = libc.renameat2(
            _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
        )
    else:
        raise OSError(errno.ENOSYS, "atomic exchange of two directories is not available", a)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot exchange {a} and {b}: {os.strerror(code)}", a)


def replace_directory(target: Path, fill: Callable[[Path], None], staging: Path) -> None:
    """Give `target` the contents `fill(tmp)` puts in a new directory, in one atomic step.

    The new directory is built under `staging` (the same file system, outside every view's
    glob), fsynced, then swapped with `target` (or renamed into place if there is none); the
    old contents are removed after the swap.
    """
    tmp = staging / uuid.uuid4().hex
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        for child in tmp.iterdir():
            fd = os.open(child, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            exchange(tmp, target)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def duckdb_files_locked(paths: Iterable[Path]) -> Iterator[list[Path]]:
    """Take DuckDB's own lock (a POSIX record lock on the whole file) on each of `paths`, so
    no DuckDB connection to any of them is open and none opens until the block ends: DuckDB
    refuses a new connection with "Could not set lock on file". Yields the files another
    process holds open; if there are any, nothing is locked. Files that do not exist are
    skipped. The calling process must not hold a DuckDB connection to them itself (its own
    locks never conflict, and closing any descriptor of a file drops them)."""
    held: list[int] = []
    busy: list[Path] = []
    try:
        for path in paths:
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
