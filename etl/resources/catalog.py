"""The analysts' catalog: DuckDB files of view definitions, one version per publish.

Each version (`catalogs/wfm-<seq>.duckdb`) holds views that list the data files of one
consistent state of the warehouse by name. `wfm.duckdb` is a symbolic link to the newest
version, switched atomically, so a connection opened at any moment gets a whole state and keeps
it until it closes: a query never reads half an import, and no file it lists is changed or
removed while the connection is open (DuckDB holds a lock on the version file for as long as a
connection has it open; versions and the data files only they list are removed once no
process holds them). A new connection sees the newest state.

A new version is made from the previous one: the file is copied and only the views whose
definitions changed are replaced (a tick changes one integration's few views), so a publish
costs milliseconds, not a rebuild of every view. The sidecar `wfm-<seq>.json` records what the
version holds (its views' hashes, the units' generations it was built from and every data file
it lists), which is what the next publish and the garbage collection read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from etl.resources.files import (
    duckdb_files_locked,
    file_lock,
    fsync_dir,
    replace_atomically,
    temporary_beside,
)

CATALOG_NAME = "wfm.duckdb"
# The warehouse's own DuckDB connections: a query over 2 s would print DuckDB's progress bar
# into run logs.
QUIET = "SET enable_progress_bar = false"
CATALOGS_DIR = "catalogs"
# A version is removed no sooner than this after a newer one was published: a client that
# resolved the link just before the switch has that long to open the version and take its lock.
CONNECT_GRACE_S = 60.0


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Version:
    """What one catalog version holds (its sidecar)."""

    seq: int
    static_hash: str
    objects: dict[str, str] = field(default_factory=dict)  # name -> hash of its definition
    units: dict[str, int] = field(default_factory=dict)  # unit -> generation built from
    files: list[str] = field(default_factory=list)  # data files it lists, relative
    published_at: float = 0.0
    legacy: bool = False  # a catalog of the earlier layout: it globbed every file there
    state: dict = field(default_factory=dict)  # what the next plan reuses (the builder's own)

    @property
    def name(self) -> str:
        return f"wfm-{self.seq:08d}.duckdb"

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "static_hash": self.static_hash,
                "objects": self.objects,
                "units": self.units,
                "files": self.files,
                "published_at": self.published_at,
                "legacy": self.legacy,
                "state": self.state,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Version:
        data = json.loads(text)
        return cls(
            seq=int(data["seq"]),
            static_hash=data["static_hash"],
            objects=dict(data.get("objects", {})),
            units={k: int(v) for k, v in data.get("units", {}).items()},
            files=list(data.get("files", [])),
            published_at=float(data.get("published_at", 0.0)),
            legacy=bool(data.get("legacy", False)),
            state=dict(data.get("state", {})),
        )


@dataclass(frozen=True)
class Plan:
    """What a new version must hold: the static SQL (the views of `sql/`, rendered) and the
    generated objects (views listing files), by name with the hash of their definition, in
    creation order; `sql` has the definition of every object that is new or changed (of all of
    them when the static SQL changed)."""

    static_sql: str
    hashes: dict[str, str]
    sql: dict[str, str]
    files: list[str]
    state: dict = field(default_factory=dict)

    @property
    def static_hash(self) -> str:
        return digest(self.static_sql)


class Catalog:
    """The versions of one warehouse's catalog."""

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / CATALOGS_DIR
        self.link = root / CATALOG_NAME

    # -- reading ------------------------------------------------------------------------------
    def current_path(self) -> Path | None:
        """The version `wfm.duckdb` points at, or None before the first publish."""
        if not self.link.is_symlink():
            return None
        target = self.link.resolve()
        return target if target.exists() else None

    def current(self) -> Version | None:
        path = self.current_path()
        return None if path is None else self._sidecar(path)

    def versions(self) -> list[tuple[Path, Version]]:
        found = []
        for path in sorted(self.dir.glob("*.duckdb")):
            try:
                found.append((path, self._sidecar(path)))
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                continue
        return found

    @staticmethod
    def _sidecar(path: Path) -> Version:
        return Version.from_json(path.with_suffix(".json").read_text(encoding="utf-8"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self.root / "locks" / "catalog.lock"):
            yield

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, make_plan: Callable[[Version | None], Plan]) -> bool:
        """Make a version holding `make_plan(current version)` the current one, unless the
        current one already does; call under `locked()`. Returns whether it published."""
        current = self.current()
        plan = make_plan(current)
        same_static = current is not None and current.static_hash == plan.static_hash
        if same_static and current.objects == plan.hashes:
            return False
        version = Version(
            seq=self._next_seq(),
            static_hash=plan.static_hash,
            objects=dict(plan.hashes),
            files=sorted(plan.files),
            state=plan.state,
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / version.name
        tmp = temporary_beside(target)
        try:
            base = self.current_path() if same_static else None
            if base is not None and current is not None:
                shutil.copyfile(base, tmp)
                changed = [n for n, h in plan.hashes.items() if current.objects.get(n) != h]
                dropped = [n for n in current.objects if n not in plan.hashes]
                self._write(tmp, [plan.sql[n] for n in changed], dropped)
            else:
                self._write(tmp, [*(plan.sql[n] for n in plan.hashes), plan.static_sql], [])
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
            Path(f"{tmp}.wal").unlink(missing_ok=True)
        version.published_at = time.time()
        sidecar = target.with_suffix(".json")
        replace_atomically(sidecar, lambda p: p.write_text(version.to_json(), encoding="utf-8"))
        fsync_dir(self.dir)
        self._point_at(target)
        return True

    def _next_seq(self) -> int:
        seqs = [int(p.stem.split("-")[1]) for p in self.dir.glob("wfm-*.duckdb")]
        return max(seqs, default=0) + 1

    @staticmethod
    def _write(path: Path, statements: Iterable[str], dropped: Iterable[str]) -> None:
        with duckdb.connect(str(path)) as con:
            con.execute(QUIET)
            for name in dropped:
                con.execute(f'DROP VIEW IF EXISTS "{name}"')
            for sql in statements:
                con.execute(sql)
            con.execute("CHECKPOINT")

    def _point_at(self, target: Path) -> None:
        """Switch `wfm.duckdb` to `target` in one rename (a relative link: the folder can move)."""
        tmp = temporary_beside(self.link)
        os.symlink(os.path.relpath(target, self.link.parent), tmp)
        try:
            os.replace(tmp, self.link)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.link.parent)

    def adopt_legacy(self) -> None:
        """Keep a catalog file of the earlier layout (`wfm.duckdb` as a plain file, and its
        retired copies) under a version name while connections may hold it: it read every file
        of the earlier folders by glob, so those stay until no one has it open."""
        legacy = [self.link] if self.link.exists() and not self.link.is_symlink() else []
        legacy += sorted((self.root / "retired_catalogs").glob("*.duckdb"))
        if not legacy:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in legacy:
            version = Version(
                seq=self._next_seq(), static_hash="", legacy=True, published_at=time.time()
            )
            target = self.dir / version.name
            os.link(path, target)
            replace_atomically(
                target.with_suffix(".json"),
                lambda p, v=version: p.write_text(v.to_json(), encoding="utf-8"),
            )
            if path != self.link:
                path.unlink()
        shutil.rmtree(self.root / "retired_catalogs", ignore_errors=True)

    # -- removing what no one holds -------------------------------------------------------------
    def remove_unheld(self, now: float | None = None, grace_s: float = CONNECT_GRACE_S) -> int:
        """Remove versions other than the current one that were superseded more than `grace_s`
        ago and that no process holds open; returns how many. Call under `locked()`."""
        now = time.time() if now is None else now
        versions = self.versions()
        current = self.current_path()
        removed = 0
        for index, (path, version) in enumerate(versions):
            if current is not None and path.resolve() == current:
                continue
            later = [v.published_at for _, v in versions[index + 1 :]]
            superseded_at = min(later) if later else version.published_at
            if now - superseded_at < grace_s:
                continue
            with duckdb_files_locked([path]) as busy:
                if busy:
                    continue
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                removed += 1
        return removed

    def held_files(self) -> tuple[set[str], bool]:
        """Data files listed by any version still kept, and whether a legacy catalog is kept
        (then every file of the earlier layout is held)."""
        files: set[str] = set()
        legacy = False
        for _, version in self.versions():
            files.update(version.files)
            legacy |= version.legacy
        return files, legacy
