"""What environments look like to clients: the ``Env`` views of the REST API, the panel, the
CLI and the magics.

Listing is the hottest path of the product (every panel refresh lists every environment of
both stores), so a managed environment's view is kept in memory and reused until one of the
files it was made from changes. Metadata is always replaced by ``rename``, so the mtimes of a
few directories say whether anything changed: four ``stat`` calls instead of three JSON reads.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import kernels
from .bodies import VERSION_RE
from .errors import NotFound
from .pins import pinned_versions
from .records import Build, EnvRecord, read_json
from .retention import version_dirs
from .store import LIVE, Store

PY_RECORD_RE = re.compile(r"python-([0-9][^-]*)-[^-]+\.json")


class EnvViews:
    """Builds (and caches) the ``Env`` dictionaries of managed and unmanaged environments."""

    def __init__(self, pin_keep_s: float = 30 * 86400.0) -> None:
        self.pin_keep_s = pin_keep_s
        # (store, name) -> bytes on disk if known (computed in the background, never here)
        self.disk: Callable[[Store, str], int | None] = lambda store, name: None
        # (scope, name) -> (fingerprint, view without its kernel state)
        self._cache: dict[tuple[str, str], tuple[tuple[int, ...], dict[str, Any]]] = {}

    def _prefix_summary(self, prefix: str | Path) -> tuple[str | None, int]:
        python, count = None, 0
        try:
            names = os.listdir(os.path.join(prefix, "conda-meta"))
        except (FileNotFoundError, NotADirectoryError):
            return None, 0
        for file in names:
            if file.endswith(".json"):
                count += 1
                if python is None and file.startswith("python-"):
                    m = PY_RECORD_RE.fullmatch(file)
                    python = m.group(1) if m else None
        return python, count

    def fingerprint_paths(self, store: Store, name: str, latest: int | None) -> tuple[str, ...]:
        """The directories whose mtimes change whenever anything a view shows changes
        (metadata is replaced by rename and versions are claimed by mkdir, so the directories'
        mtimes move): its metadata, its builds and latest build, its records, its version
        directories, its pins."""
        env_dir = os.path.join(store.meta, "envs", name)
        paths = [env_dir, os.path.join(env_dir, "builds"), *self.listing_paths(store, name)]
        if latest:
            paths.append(os.path.join(env_dir, "builds", str(latest)))
        return tuple(paths)

    @staticmethod
    def listing_paths(store: Store, name: str) -> tuple[str, str, str, str]:
        """What a listing stats for a managed environment whose view it holds: its metadata
        directory (``env.json`` and ``state.json`` are replaced there, and a new build writes
        ``state.json``'s ``next_version``; a build's own record changes only while it runs,
        and running builds are never cached), its records (``conda-meta``), its version
        directories and its pins (the last two only if they exist: else their parents)."""
        return (
            os.path.join(store.meta, "envs", name),
            os.path.join(store.root, name, "conda-meta"),
            os.path.join(store.meta, "prefixes", name),
            os.path.join(store.meta, "pins", name),
        )

    def _fingerprint(self, store: Store, name: str, latest: int | None) -> tuple[int, ...] | None:
        """The mtimes of :meth:`fingerprint_paths`; None when too fresh to trust."""
        stamps = []
        for path in self.fingerprint_paths(store, name, latest):
            try:
                stamps.append(os.stat(path).st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        if time.time_ns() - max(stamps) < 2_000_000_000:
            return None  # changed within the clock's granularity: a second change could hide
        return tuple(stamps)

    def view(self, store: Store, name: str, installed: set[str]) -> dict[str, Any]:
        key = (store.scope, name)
        cached = self._cache.get(key)
        if cached is not None:
            latest = (cached[1]["latest_build"] or {}).get("version")
            if self._fingerprint(store, name, latest) == cached[0]:
                return self._with_kernel(store, dict(cached[1]), installed)
        view = self.base_view(store, name)
        latest = (view["latest_build"] or {}).get("version")
        fingerprint = self._fingerprint(store, name, latest)
        if fingerprint is not None and view["status"] != "building":
            self._cache[key] = (fingerprint, view)
        else:
            self._cache.pop(key, None)
        return self._with_kernel(store, dict(view), installed)

    def _with_kernel(
        self, store: Store, view: dict[str, Any], installed: set[str]
    ) -> dict[str, Any]:
        view["disk_bytes"] = self.disk(store, view["name"])
        if view["version"]:
            kname = kernels.kernel_name(store.scope, view["name"])
            view["kernel"] = {
                "name": kname,
                "display_name": view["display_name"]
                + (" (shared)" if store.scope == "shared" else ""),
                "active": kname in installed,
            }
        return view

    def base_view(self, store: Store, name: str, dirs: list[str] | None = None) -> dict[str, Any]:
        """What a managed environment's records say (no kernel state, no disk use).

        The first listing after a start reads this for every environment, so paths are plain
        strings. ``dirs``: filled with the directories its files live in (its disk use's key).
        """
        env_dir = os.path.join(store.meta, "envs", name)
        data = read_json(os.path.join(env_dir, "env.json"))
        if data is None:
            raise NotFound(f"No environment {name!r} in the {store.scope} store")
        record = EnvRecord.from_dict(data)
        latest = _latest_build(os.path.join(env_dir, "builds"))
        if latest and latest.status in LIVE:
            latest = store.reap(name, latest)
        # Read after the reap: ending a build a kill cut short between its swap and its record
        # finishes the swap, and writes the version now in use.
        state = read_json(os.path.join(env_dir, "state.json"), {}) or {}
        version = state.get("active_version")
        usual = os.path.join(store.root, name)
        python, packages = self._prefix_summary(usual) if version else (None, 0)
        if latest is None:
            status = "saved"
        elif latest.status in LIVE:
            status = "building"
        elif latest.status == "succeeded":
            status = "ready"
        elif latest.status == "cancelled":
            status = "ready" if version else "saved"
        else:
            status = "failed"
        spec = record.spec
        versions = version_dirs(store, name)
        if dirs is not None:
            dirs += [str(path) for _, _, path in versions]
            if os.path.isdir(usual) and not os.path.islink(usual):
                dirs.append(usual)
        return {
            "name": name,
            "scope": store.scope,
            "display_name": spec.display_name or name,
            "description": spec.description,
            "status": status,
            "version": version,
            "prefix": usual,
            "spec": spec.package_specs(),
            "kernel": None,
            "python_version": python,
            "packages": packages + int(state.get("pip_count", 0)) if version else 0,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "created_by": record.created_by,
            "managed": True,
            "phase": latest.phase if latest and latest.status in LIVE else None,
            "latest_build": latest.public() if latest else None,
            "origin": record.origin,
            # Versions whose directory exists, and those pinned notebooks opened lately.
            "materialized": [v for v, _, _ in versions],
            "pinned": sorted(pinned_versions(store, name, self.pin_keep_s)),
        }

    def unmanaged(self, store: Store, name: str, installed: set[str]) -> dict[str, Any]:
        prefix = store.prefix(name)
        python, packages = self._prefix_summary(prefix)
        kname = kernels.kernel_name(store.scope, name)
        stamp = _mtime(prefix / "conda-meta")
        return {
            "name": name,
            "scope": store.scope,
            "display_name": name,
            "description": "",
            "status": "ready",
            "version": None,
            "prefix": str(prefix),
            "spec": {
                "python": None,
                "conda": [],
                "pip": [],
                "channels": [],
                "base": None,
                "variables": {},
            },
            "kernel": {"name": kname, "display_name": name, "active": kname in installed},
            "python_version": python,
            "packages": packages,
            "created_at": stamp,
            "updated_at": stamp,
            "created_by": None,
            "managed": False,
            "phase": None,
            "latest_build": None,
            "origin": None,
            "materialized": [],
            "pinned": [],
            "disk_bytes": self.disk(store, name),
        }


def _latest_build(builds: str) -> Build | None:
    """The newest build whose record is written (a number claimed a moment ago may not be)."""
    try:
        with os.scandir(builds) as entries:
            versions = sorted(int(e.name) for e in entries if VERSION_RE.fullmatch(e.name))
    except (FileNotFoundError, NotADirectoryError):
        return None
    while versions:
        data = read_json(os.path.join(builds, str(versions.pop()), "build.json"))
        if data is not None:
            return Build.from_dict(data)
    return None


def _mtime(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(
            timespec="milliseconds"
        )
    except OSError:
        return None
