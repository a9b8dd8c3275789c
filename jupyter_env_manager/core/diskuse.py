"""Disk use: real bytes, hard links counted once (what ``du`` means), and cleaning the cache.

An environment's use is that of its version directories together (a file hard-linked from the
package cache, or shared by two versions, counts once); a store's is that of all its
environments together. Version directories never change once made, so a figure is cached
against the set of directories it was computed from, and computed in the background by the
server (never on a listing's path); ``jupyter envmgr du`` computes what is missing now.
Whenever a known figure changes, :attr:`DiskUse.generation` does too: a listing that saw the
same generation knows that no environment's figure changed without looking at each one.

``clean`` removes the package cache's packages that no environment of the user's stores links
(judged by the ``conda-meta`` records of every version directory and conda-made prefix), and
says how many bytes that frees: only files no other directory links count.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import bytecode, verified
from .pkgcache import shared_conda_cache
from .retention import version_dirs
from .store import Store

if TYPE_CHECKING:
    from .service import EnvService

PUBLISH_EVERY_S = 10.0  # how often the background pass shows the figures it computed


def tree_usage(paths: list[Path], seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated to ``paths`` (recursively, symlinks not followed), each inode once."""
    seen = set() if seen is None else seen
    total = 0
    stack = [str(p) for p in paths]
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += st.st_blocks * 512
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                with os.scandir(path) as entries:
                    stack.extend(e.path for e in entries)
            except OSError:
                continue
    return total


def env_dirs(store: Store, name: str) -> list[Path]:
    """The directories an environment's files live in: its version directories, or the
    prefix itself for one made by conda or the first release."""
    dirs = [path for _, _, path in version_dirs(store, name)]
    usual = store.prefix(name)
    if usual.is_dir() and not usual.is_symlink():
        dirs.append(usual)
    return dirs


@dataclass
class DiskUse:
    """The disk-use part of the facade (``service.disk``): cached figures, computed off-path."""

    svc: EnvService
    _cache: dict[tuple[str, str], tuple[tuple[str, ...], int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Changes whenever a figure is added or replaced (read without the lock: a listing that
    # reads it just before a change sees the change at its next pass).
    generation: int = 0

    def cached(self, store: Store, name: str) -> int | None:
        """The environment's bytes if known for its current directories (no computing)."""
        hit = self._cache.get((store.scope, name))
        if hit is None:
            return None
        dirs = tuple(str(p) for p in env_dirs(store, name))
        return hit[1] if hit[0] == dirs else None

    def peek(self, scope: str, name: str, dirs: tuple[str, ...]) -> int | None:
        """The bytes known for these directories of the environment (no file system access:
        the listing knows its directories already)."""
        hit = self._cache.get((scope, name))
        return hit[1] if hit is not None and hit[0] == dirs else None

    def seed(self, scope: str, name: str, dirs: tuple[str, ...], value: int) -> None:
        """A figure computed by an earlier process (the listing's cache keeps them)."""
        with self._lock:
            if (scope, name) not in self._cache:
                self._cache[(scope, name)] = (dirs, value)
                self.generation += 1

    def environment(self, store: Store, name: str) -> int:
        dirs = env_dirs(store, name)
        key = tuple(str(p) for p in dirs)
        hit = self._cache.get((store.scope, name))
        if hit is not None and hit[0] == key:
            return hit[1]
        value = tree_usage(dirs)
        self._publish({(store.scope, name): (key, value)})
        return value

    def _publish(self, figures: dict[tuple[str, str], tuple[tuple[str, ...], int]]) -> None:
        """Make new figures known (and move the generation if any changed)."""
        with self._lock:
            changed = any(self._cache.get(key) != hit for key, hit in figures.items())
            self._cache.update(figures)
            if changed:
                self.generation += 1

    def report(self, scope: str | None = None) -> dict[str, Any]:
        """Per environment and per store (a store's total counts shared files once)."""
        stores = []
        for store in self.svc.stores(scope):
            names = store.managed_names() + store.unmanaged_names()
            envs = {name: self.environment(store, name) for name in names}
            total = tree_usage([d for name in names for d in env_dirs(store, name)])
            stores.append(
                {
                    "scope": store.scope,
                    "root": str(store.root),
                    "bytes": total,
                    "environments": envs,
                }
            )
        return {"stores": stores}

    def refresh(self) -> int:
        """Compute what is missing (the server's background pass); how many were computed.

        New figures are handed to the listing in batches (every few seconds and at the end),
        not one by one: each batch changes the list once, not at every request."""
        done = 0
        self.svc.listing.load()  # the figures of the last server's run
        batch: dict[tuple[str, str], tuple[tuple[str, ...], int]] = {}
        published = time.monotonic()
        for store in self.svc.stores():
            try:
                names = store.managed_names()
            except Exception:
                continue
            for name in names:
                if self.cached(store, name) is None:
                    self.svc.listing.wait_idle()  # a request first
                    dirs = env_dirs(store, name)
                    batch[(store.scope, name)] = (tuple(map(str, dirs)), tree_usage(dirs))
                    done += 1
                if batch and time.monotonic() - published > PUBLISH_EVERY_S:
                    self._publish(batch)
                    batch, published = {}, time.monotonic()
        self._publish(batch)
        return done

    # -- the package cache -------------------------------------------------------------------

    def clean(self, dry_run: bool = False) -> dict[str, Any]:
        """Remove cached packages no environment of the user's stores links to: from the local
        package cache, and from this user's on the shared store's filesystem (see
        :mod:`.pkgcache`; only this user's builds link from it, so it is pruned as safely as
        the local one; repodata and the uv caches are left alone), with the byte-code builds
        kept for them (see :mod:`.bytecode`)."""
        used: set[str] = set()
        for store in self.svc.stores():
            names = store.managed_names() + store.unmanaged_names()
            for name in names:
                for directory in env_dirs(store, name):
                    try:
                        with os.scandir(directory / "conda-meta") as records:
                            used |= {e.name[:-5] for e in records if e.name.endswith(".json")}
                    except OSError:
                        continue
        pkgs = Path(self.svc.settings.pkgs_dir)
        removed, freed = _prune(pkgs, used, dry_run)
        out: dict[str, Any] = {
            "removed": removed,
            "freed_bytes": freed,
            "dry_run": dry_run,
            "pkgs_dir": str(pkgs),
            "shared": None,
        }
        shared = self.svc.shared
        if shared is not None and shared.permission() != "none":
            cache = shared_conda_cache(shared)
            if cache.is_dir() and os.stat(cache).st_uid == os.geteuid():
                gone, bytes_ = _prune(cache, used, dry_run)
                out["shared"] = {"pkgs_dir": str(cache), "removed": gone, "freed_bytes": bytes_}
        return out


def _prune(pkgs: Path, used: set[str], dry_run: bool) -> tuple[list[str], int]:
    removed: list[str] = []
    freed = 0
    entries: list[os.DirEntry[str]] = []
    try:
        entries = sorted(os.scandir(pkgs), key=lambda e: e.name)
    except FileNotFoundError:
        pass
    for entry in entries:
        package = _package_of(entry)
        if package is None or package in used:
            continue
        freed += _freed_bytes(Path(entry.path))
        removed.append(entry.name)
        if not dry_run:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    for kept in bytecode.unused(pkgs, used):  # what builds compiled for those packages
        freed += _freed_bytes(kept)
        removed.append(f"{kept.parent.name}/{kept.name}")
        if not dry_run:
            shutil.rmtree(kept, ignore_errors=True)
    for certificate in verified.unused(pkgs, used):  # what verify proved of those packages
        freed += _freed_bytes(certificate)
        removed.append(f"{certificate.parent.name}/{certificate.name}")
        if not dry_run:
            certificate.unlink(missing_ok=True)
    return removed, freed


def _package_of(entry: os.DirEntry) -> str | None:
    """``name-version-build`` of a package cache entry (extracted, an archive, a lock)."""
    if entry.is_dir(follow_symlinks=False):
        return (
            entry.name if os.path.isfile(os.path.join(entry.path, "info", "index.json")) else None
        )
    for suffix in (".conda", ".tar.bz2", ".lock"):  # an archive, or rattler's lock of an entry
        name = entry.name[: -len(suffix)]
        if entry.name.endswith(suffix) and name.count("-") >= 2:  # name-version-build
            return name
    return None


def _freed_bytes(path: Path) -> int:
    """Bytes removing ``path`` frees: files linked nowhere else (and the directories)."""
    if not path.is_dir():
        paths = [str(path)]
    else:
        paths = [str(path)]
        for dirpath, dirnames, filenames in os.walk(path):
            paths += [os.path.join(dirpath, n) for n in [*dirnames, *filenames]]
    total = 0
    for item in paths:
        try:
            st = os.lstat(item)
        except OSError:
            continue
        if st.st_nlink == 1 or os.path.isdir(item):
            total += st.st_blocks * 512
    return total
