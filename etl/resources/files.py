"""Atomic file replacement under a per-file lock.

Readers (analysts' DuckDB sessions) open files by name at query time; a rename is atomic on
POSIX, so they see either the old file or the new one, never a half-written one. Temporary
files are named `.tmp-*` so they never match the views' `*.parquet` globs. A directory whose
files are replaced by other files (a month's day files by one month file) is swapped whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
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


RETIRED_PREFIX = "retired-"


def replace_directory(
    target: Path, fill: Callable[[Path], None], staging: Path, keep_old_seconds: float = 60.0
) -> None:
    """Give `target` the contents `fill(tmp)` puts in a new directory, in one atomic step.

    The new directory is built under `staging` (the same file system, outside every view's
    glob), fsynced, then swapped with `target` (or renamed into place if there is none). The
    old contents stay under `staging` for `keep_old_seconds`: a reader that opened the old
    directory just before the swap still lists its files (and fails opening them by name,
    which a retry mends) instead of an emptied folder, which would hide them without an error.
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
            if keep_old_seconds > 0:
                os.rename(tmp, staging / f"{RETIRED_PREFIX}{time.time():.0f}-{tmp.name}")
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_retired(staging, time.time() - keep_old_seconds)


def _remove_retired(staging: Path, before: float) -> None:
    """Remove the old contents that `replace_directory` kept and that were retired before
    `before` (seconds since the epoch)."""
    for child in staging.glob(f"{RETIRED_PREFIX}*"):
        retired_at = child.name.removeprefix(RETIRED_PREFIX).split("-", 1)[0]
        if retired_at.isdigit() and int(retired_at) < before:
            shutil.rmtree(child, ignore_errors=True)
