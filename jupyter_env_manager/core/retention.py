"""Which version directories a store keeps, and removing the others.

Every version has its own directory (``<root>/.envmgr/prefixes/<name>/v<N>-<id>``). One is
kept when any of these holds:

- it is the version in use (``<root>/<name>`` points at it);
- a kernel uses it: a live record in ``<root>/.envmgr/live`` names it (see :mod:`.liveness`:
  on this host its process runs; from another host its record is fresher than
  ``kernel_stale_s``);
- it is one of the newest ``keep_versions`` succeeded versions of its environment;
- a pinned notebook opened or ran it within ``pin_keep_s`` (see :mod:`.pins`).

Everything else is removed: directories of older versions, of a deleted environment, of a
deleted and recreated environment's builds. A version's spec, lock and log are never removed
here, so any version can be built again from its lock. Deciding and renaming away happen under
the environment's lock and never while a swap of it is under way (its journal exists), so a
directory about to be put in use is never taken. Removal runs after builds (in the worker),
at a server's start and periodically in the server, and on delete; never on a request's path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import liveness
from .errors import EnvManagerError, NotFound
from .pins import pinned_versions
from .store import Store

if TYPE_CHECKING:
    from .service import EnvService

VERSION_DIR_RE = re.compile(r"v([0-9]{1,9})-([0-9a-f]{1,32}|legacy)")


@dataclass
class Collected:
    """What one pass removed and kept, per environment (``scope/name``)."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    kept_for_kernels: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: Collected) -> None:
        for key, values in other.removed.items():
            self.removed.setdefault(key, []).extend(values)
        for key, values in other.kept_for_kernels.items():
            self.kept_for_kernels.setdefault(key, []).extend(values)


def version_dirs(store: Store, name: str) -> list[tuple[int, str, Path]]:
    """(version, id or "legacy", directory) of every version directory of ``name``."""
    try:
        entries = list(os.scandir(store.versions_dir(name)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in entries:
        match = VERSION_DIR_RE.fullmatch(entry.name)
        if match and entry.is_dir(follow_symlinks=False):
            out.append((int(match.group(1)), match.group(2), Path(entry.path)))
    return sorted(out)


def in_use_by_kernels(store: Store, stale_s: float) -> set[str]:
    """The real paths of the version directories live kernels use."""
    return {os.path.realpath(r.prefix) for r in liveness.scan(store.live_dir, stale_s)}


def collect(
    store: Store,
    name: str,
    *,
    keep_versions: int,
    stale_s: float,
    dry_run: bool = False,
    live: set[str] | None = None,
    pin_keep_s: float = 30 * 86400.0,
) -> Collected:
    """Remove the version directories of ``name`` that nothing keeps (see the module)."""
    result = Collected()
    dirs = version_dirs(store, name)
    if not dirs:
        return result
    live = in_use_by_kernels(store, stale_s) if live is None else live
    key = f"{store.scope}/{name}"
    gone: list[Path] = []
    try:
        lock = store.env_lock(name) if store.exists(name) else None
    except EnvManagerError:
        return result
    if lock is None:  # a deleted environment: nothing of it is in use but by kernels
        for _, _, path in dirs:
            if os.path.realpath(path) in live:
                result.kept_for_kernels.setdefault(key, []).append(path.name)
            elif not store.exists(name):  # not recreated meanwhile
                result.removed.setdefault(key, []).append(path.name)
                if not dry_run:
                    gone.append(_away(store, name, path))
    else:
        try:
            with lock:
                if (store.env_dir(name) / "swap.json").exists():
                    return result  # a swap is under way, or to be recovered first
                active = str(store.active_prefix(name))
                keep = {active}
                keep.update(str(p) for p in _newest(store, name, dirs, keep_versions, active))
                pinned = pinned_versions(store, name, pin_keep_s)
                keep.update(str(p) for v, _, p in dirs if v in pinned)
                for _, _, path in dirs:
                    real = os.path.realpath(path)
                    if real in keep:
                        continue
                    if real in live:
                        result.kept_for_kernels.setdefault(key, []).append(path.name)
                        continue
                    result.removed.setdefault(key, []).append(path.name)
                    if not dry_run:
                        gone.append(_away(store, name, path))
        except (OSError, EnvManagerError):
            pass  # the next pass tries again
    for path in gone:
        store.remove_tree(path)
    if not dry_run and not store.exists(name):
        try:
            store.versions_dir(name).rmdir()  # only when empty
        except OSError:
            pass
    return result


def collect_store(
    store: Store,
    *,
    keep_versions: int,
    stale_s: float,
    dry_run: bool = False,
    pin_keep_s: float = 30 * 86400.0,
) -> Collected:
    """:func:`collect` for every environment with version directories in one store."""
    result = Collected()
    if store.permission() != "write":
        return result
    try:
        names = sorted(e.name for e in os.scandir(store.meta / "prefixes") if e.is_dir())
    except FileNotFoundError:
        return result
    live = in_use_by_kernels(store, stale_s)
    for name in names:
        result.merge(
            collect(
                store,
                name,
                keep_versions=keep_versions,
                stale_s=stale_s,
                dry_run=dry_run,
                live=live,
                pin_keep_s=pin_keep_s,
            )
        )
    return result


def _newest(
    store: Store, name: str, dirs: list[tuple[int, str, Path]], keep_versions: int, active: str
) -> list[Path]:
    """The directories of the newest ``keep_versions`` succeeded builds of ``name``, the one
    in use counted first (its build may not be recorded as succeeded yet: the worker that just
    switched to it runs this before recording its end)."""
    kept: list[Path] = [Path(active)]
    for version, ident, path in reversed(dirs):
        if len(kept) >= keep_versions:
            break
        if str(path) == active:
            continue
        try:
            build = store.read_build(name, version)
        except NotFound:
            continue
        if build.status == "succeeded" and (ident == "legacy" or build.id.startswith(ident)):
            kept.append(path)
    return kept


def _away(store: Store, name: str, path: Path) -> Path:
    """Rename a version directory into the trash (atomic: it is gone from its place at once)."""
    return store.to_trash(path, name)


class Retention:
    """The retention part of the facade (``service.retention``)."""

    def __init__(self, service: EnvService):
        self.svc = service

    def collect(
        self, scope: str | None = None, name: str | None = None, dry_run: bool = False
    ) -> Collected:
        """Remove (or with ``dry_run`` only list) version directories nothing keeps."""
        s = self.svc.settings
        result = Collected()
        for store in self.svc.stores(scope):
            if name is not None:
                result.merge(
                    collect(
                        store,
                        name,
                        keep_versions=s.keep_versions,
                        stale_s=s.kernel_stale_s,
                        dry_run=dry_run,
                        pin_keep_s=s.pin_keep_s,
                    )
                )
            else:
                result.merge(
                    collect_store(
                        store,
                        keep_versions=s.keep_versions,
                        stale_s=s.kernel_stale_s,
                        dry_run=dry_run,
                        pin_keep_s=s.pin_keep_s,
                    )
                )
        return result

    def live_kernels(self, scope: str | None = None) -> list[liveness.LiveKernel]:
        """The running kernels of the stores' environments, from every host."""
        out: list[liveness.LiveKernel] = []
        for store in self.svc.stores(scope):
            out += liveness.scan(store.live_dir, self.svc.settings.kernel_stale_s)
        return out
