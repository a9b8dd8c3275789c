"""What a build is made of, exactly: its conda records (a rattler lock file, to reproduce it
with no solve) and its pip layer, plus a JSON lock for people and exports (``lock.json``).

Written by the build worker when a build is verified; read by revert and copy (the records),
by exports and the packages view (the JSON lock). Reading a version's packages never scans its
prefix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BuildFailed

LOCK_ENV = "default"


def _hex(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex() if isinstance(value, (bytes, bytearray)) else str(value)


def conda_lock_entries(records: list[Any]) -> list[dict[str, Any]]:
    entries = [
        {
            "name": r.name.normalized,
            "version": str(r.version),
            "build": str(r.build),
            "channel": str(r.channel) if r.channel else None,
            "subdir": r.subdir,
            "url": str(r.url),
            "sha256": _hex(r.sha256),
            "md5": _hex(r.md5),
            "size": r.size,
        }
        for r in records
    ]
    return sorted(entries, key=lambda e: e["name"])


def linked_records(prefix: Path) -> Iterator[tuple[dict[str, Any], str, list[dict[str, Any]]]]:
    """Each conda-meta record of ``prefix`` that names its package cache entry (an absolute
    path): the record, that entry, and the paths it linked (``paths_data``)."""
    try:
        metas = [e.path for e in os.scandir(prefix / "conda-meta") if e.name.endswith(".json")]
    except OSError:
        return
    for meta in metas:
        try:
            with open(meta, "rb") as f:
                record = json.load(f)
            entry = record.get("extracted_package_dir") or ""
            paths = record.get("paths_data", {}).get("paths", [])
        except (OSError, ValueError, AttributeError):
            continue
        if entry and os.path.isabs(entry):
            yield record, entry, paths


def site_packages(prefix: Path) -> Path | None:
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    return found[0] if found else None


def pip_distributions(prefix: Path) -> list[dict[str, str]]:
    """Distributions of the pip layer: those uv installed (INSTALLER says so)."""
    sp = site_packages(prefix)
    if sp is None:
        return []
    dists = []
    for info in sp.glob("*.dist-info"):
        try:
            if (info / "INSTALLER").read_text().strip() != "uv":
                continue
            name = version = None
            with open(info / "METADATA", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("Name:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("Version:"):
                        version = line.split(":", 1)[1].strip()
                    if (name and version) or not line.strip():
                        break
        except OSError:
            continue
        if name and version:
            dists.append({"name": name, "version": version})
    return sorted(dists, key=lambda d: d["name"].lower())


def read_lock(build_dir: Path) -> dict[str, Any]:
    with open(build_dir / "lock.json") as f:
        return json.load(f)


def lock_records(build_dir: Path) -> list[Any]:
    """The exact conda records of a finished build, from its rattler lock file (no solve)."""
    from rattler import LockFile

    lock = LockFile.from_path(build_dir / "rattler-lock.yml")
    env = lock.environment(LOCK_ENV)
    records = None
    if env is not None:
        for platform in env.platforms():
            records = env.conda_repodata_records_for_platform(platform)
            if records is not None:
                break
    if records is None:
        raise BuildFailed(f"The lock of {build_dir} has no packages for this platform")
    return records


def write_locks(build_dir: Path, records: list[Any], pip: list[dict[str, str]], channels) -> None:
    """Write the rattler lock (to reproduce the build exactly) and our JSON lock (to export)."""
    from rattler import LockChannel, LockFile, LockPlatform, Platform

    from .diagnose import redact

    platform = LockPlatform(str(Platform.current()))
    lock = LockFile([platform])
    lock.set_channels(LOCK_ENV, [LockChannel(redact(c)) for c in channels])
    for record in records:  # no secret in a lock (diagnose.restore_credentials puts it back)
        record.url = redact(str(record.url))
    for record in records:
        lock.add_conda_package(LOCK_ENV, platform, record)
    for dist in pip:
        lock.add_pypi_package(LOCK_ENV, platform, dist["name"], dist["version"], dist["name"])
    lock.to_path(build_dir / "rattler-lock.yml")
    data = {"conda": conda_lock_entries(records), "pip": pip}
    tmp = build_dir / ".lock.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, build_dir / "lock.json")
