"""Liveness records: which version directories running kernels use, seen from any host.

A kernel of a store's environment is started by :mod:`.launch`, which writes one small record
``<root>/.envmgr/live/<host>.<pid>.<start>.json`` (host, pid, process start time, scope, name,
version, the version's directory) before the kernel runs, and leaves a watcher process that
refreshes the record's mtime while the kernel lives and removes it when the kernel ends.

A record is *live* when:

- it is from this host: its process (pid and start time, so a reused pid does not count) runs;
- it is from another host: its mtime is younger than the staleness bound (the watcher there
  refreshes it every :data:`REFRESH_S`; a host that died stops refreshing, and its records go
  stale after ``c.EnvManager.kernel_stale_s``).

Records of ended kernels are removed by whoever notices (when they may). Only the standard
library is used, and of it only what a kernel start needs at import (no pathlib, dataclasses
or socket): the launcher imports this before the kernel starts.
"""

from __future__ import annotations

import json
import os
import time

from .identity import hostname, process_start, running

LIVE_DIR = "live"
REFRESH_S = float(os.environ.get("JUPYTER_ENV_MANAGER_LIVE_REFRESH_S", "300"))
"""How often a kernel's watcher refreshes its record (the staleness bound must be larger)."""


class LiveKernel:
    """One liveness record (``path`` and ``refreshed_at``, its mtime, are the file's)."""

    __slots__ = (
        "path", "host", "pid", "start", "scope", "name", "version", "prefix", "user",
        "started_at", "refreshed_at",
    )  # fmt: skip
    path: str | os.PathLike
    host: str
    pid: int
    start: int | None
    scope: str
    name: str
    version: int | None
    prefix: str
    user: str
    started_at: float
    refreshed_at: float  # the record's mtime

    def __init__(self, **fields) -> None:
        for key in self.__slots__:
            setattr(self, key, fields[key])

    def __repr__(self) -> str:
        return f"LiveKernel({self.host}.{self.pid} {self.scope}/{self.name} v{self.version})"

    def alive(self, stale_s: float, now: float | None = None) -> bool:
        if self.host == hostname():
            return running(self.pid, self.start)
        return (now or time.time()) - self.refreshed_at < stale_s


def record_path(live_dir: str | os.PathLike, pid: int, start: int | None) -> str:
    return os.path.join(live_dir, f"{hostname()}.{pid}.{start or 0}.json")


def register(
    live_dir: str | os.PathLike,
    *,
    pid: int,
    scope: str,
    name: str,
    version: int | None,
    prefix: str,
    user: str,
    mode: int = 0o644,
) -> str:
    """Write the record of the kernel that is (or is about to become) process ``pid``."""
    start = process_start(pid)
    path = record_path(live_dir, pid, start)
    data = {
        "host": hostname(),
        "pid": pid,
        "start": start,
        "scope": scope,
        "name": name,
        "version": version,
        "prefix": prefix,
        "user": user,
        "started_at": time.time(),
    }
    tmp = os.path.join(live_dir, f".{os.path.basename(path)}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, json.dumps(data).encode())
        os.fchmod(fd, mode)  # whatever the umask
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read(path: str | os.PathLike) -> LiveKernel | None:
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return LiveKernel(
            path=path,
            host=str(data["host"]),
            pid=int(data["pid"]),
            start=data.get("start"),
            scope=str(data.get("scope", "")),
            name=str(data.get("name", "")),
            version=data.get("version"),
            prefix=str(data["prefix"]),
            user=str(data.get("user", "")),
            started_at=float(data.get("started_at", st.st_mtime)),
            refreshed_at=st.st_mtime,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def scan(live_dir: str | os.PathLike, stale_s: float) -> list[LiveKernel]:
    """The live records of a store; records of ended kernels are removed where we may."""
    from pathlib import Path  # readers are servers, which have it already

    try:
        entries = [e for e in os.scandir(os.fspath(live_dir)) if e.name.endswith(".json")]
    except (FileNotFoundError, PermissionError):
        return []
    now = time.time()
    live = []
    for entry in entries:
        record = read(Path(entry.path))
        if record is None:
            continue
        if record.alive(stale_s, now):
            live.append(record)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # another user's, in a sticky directory: it stays ended all the same
    return live


def watch(
    path: str | os.PathLike, pid: int, start: int | None, refresh_s: float = REFRESH_S
) -> None:
    """In a process of its own: refresh the record while ``pid`` runs, then remove it."""
    last = time.monotonic()
    while running(pid, start):
        time.sleep(min(2.0, refresh_s))
        if time.monotonic() - last >= refresh_s:
            try:
                os.utime(path)
            except FileNotFoundError:
                return  # removed (the store was cleaned): nothing more to keep fresh
            except OSError:
                pass
            last = time.monotonic()
    try:
        os.unlink(path)
    except OSError:
        pass
