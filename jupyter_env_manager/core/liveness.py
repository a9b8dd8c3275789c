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
library is used: the launcher imports this before the kernel starts.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIVE_DIR = "live"
REFRESH_S = float(os.environ.get("JUPYTER_ENV_MANAGER_LIVE_REFRESH_S", "300"))
"""How often a kernel's watcher refreshes its record (the staleness bound must be larger)."""


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks after boot (/proc/PID/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def running(pid: int, start: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's kernel: it exists
    if start is not None:
        current = process_start(pid)
        if current is not None and current != start:
            return False
    try:  # a zombie has ended: its files are no longer in use
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


@dataclass
class LiveKernel:
    """One liveness record."""

    path: Path
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

    def alive(self, stale_s: float, now: float | None = None) -> bool:
        if self.host == socket.gethostname():
            return running(self.pid, self.start)
        return (now or time.time()) - self.refreshed_at < stale_s


def record_path(live_dir: Path, pid: int, start: int | None) -> Path:
    return live_dir / f"{socket.gethostname()}.{pid}.{start or 0}.json"


def register(
    live_dir: Path,
    *,
    pid: int,
    scope: str,
    name: str,
    version: int | None,
    prefix: str,
    user: str,
    mode: int = 0o644,
) -> Path:
    """Write the record of the kernel that is (or is about to become) process ``pid``."""
    start = process_start(pid)
    path = record_path(live_dir, pid, start)
    data = {
        "host": socket.gethostname(),
        "pid": pid,
        "start": start,
        "scope": scope,
        "name": name,
        "version": version,
        "prefix": prefix,
        "user": user,
        "started_at": time.time(),
    }
    tmp = live_dir / f".{path.name}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, json.dumps(data).encode())
        os.fchmod(fd, mode)  # whatever the umask
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read(path: Path) -> LiveKernel | None:
    try:
        st = os.stat(path)
        data: dict[str, Any] = json.loads(path.read_text())
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


def scan(live_dir: Path, stale_s: float) -> list[LiveKernel]:
    """The live records of a store; records of ended kernels are removed where we may."""
    try:
        entries = [e for e in os.scandir(live_dir) if e.name.endswith(".json")]
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


def watch(path: Path, pid: int, start: int | None, refresh_s: float = REFRESH_S) -> None:
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
