"""The records of a store and who writes them: builds, environment records, atomic JSON files,
and the identity of the process that owns a build (host, pid, start time).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .identity import current_user, hostname, process_start
from .spec import EnvSpec

STORE_FORMAT = 1
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")
LIVE = ("queued", "running")
# In a build's directory: why its worker is being terminated, when that is not a cancel.
STOP_REASON = "stop.json"
# In a build's directory: a cancel asked for by a process that does not own the worker.
CANCEL_REQUEST = "cancel.json"
# Test hook: a worker stops itself (SIGSTOP) at these named points, so a test can kill it there.
PAUSE_ENV = "JUPYTER_ENV_MANAGER_TEST_PAUSE_AT"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def random_hex(nbytes: int) -> str:
    """A random hex token (temporary and trash names, build ids): ``uuid4().hex`` without
    importing uuid, which a build worker would import for nothing else."""
    return os.urandom(nbytes).hex()


def write_json(path: Path, data: Any, mode: int | None = None, durable: bool = True) -> None:
    """Replace ``path`` atomically (readers see the old or the new file, never half of one).

    ``durable``: the file's data reaches the disk (fsync) before the rename, so a power cut
    leaves the old file or the new one. Without it, the write is still atomic for every reader
    and survives a killed process (the kernel keeps the page cache); only a crash of the whole
    machine may lose it (ext4 and btrfs write a renamed-over file's data first; elsewhere the
    file may then be empty, which readers take as absent). For records rewritten often whose
    loss a reader survives (a build's phases: the final status is durable, and a build
    without one is reaped as interrupted).
    """
    tmp = path.with_name(f".{path.name}.{random_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    with open(fd, "w") as f:
        if mode is not None:  # never more open than ``mode``, not even for a moment
            os.fchmod(f.fileno(), mode)
        json.dump(data, f, indent=1)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except json.JSONDecodeError:
        return default


@dataclass
class Build:
    """One numbered build of an environment (also made by revert and copy)."""

    version: int
    status: str = "queued"
    kind: str = "build"  # build | revert | copy
    phase: str | None = None
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    user: str = field(default_factory=current_user)
    source: dict[str, Any] | None = None  # revert: {"version"}; copy: {"scope", "name", "version"}
    phases: list[dict[str, Any]] = field(default_factory=list)
    owner: dict[str, Any] = field(default_factory=dict)  # {"host", "pid", "start"} of its runner
    id: str = ""  # unique: set when the version is claimed (allocate_build)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """The REST shape (no owner, no id). Listing calls this per environment: no deep copy."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("owner", "id")}
        data["phases"] = [dict(p) for p in self.phases]
        if self.source is not None:
            data["source"] = dict(self.source)
        return data

    def event(self, action: str, scope: str, name: str) -> dict[str, Any]:
        """The data of a ``build`` event (see events/build.yaml)."""
        return {
            "action": action,
            "scope": scope,
            "name": name,
            "version": self.version,
            "status": self.status,
            "phase": self.phase or "",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Build:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class EnvRecord:
    spec: EnvSpec
    created_at: str
    updated_at: str
    created_by: str
    origin: dict[str, Any] | None = None  # {"copied_from": ..} or {"adopted": true}
    updated_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STORE_FORMAT,
            "spec": self.spec.to_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "created_by": self.created_by,
            "updated_by": self.updated_by,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvRecord:
        return cls(
            spec=EnvSpec.from_dict(data["spec"]),
            created_at=data.get("created_at") or now(),
            updated_at=data.get("updated_at") or now(),
            created_by=data.get("created_by") or "",
            origin=data.get("origin"),
            updated_by=data.get("updated_by"),
        )


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process an owner record names still runs: None on another host (unknown)."""
    if owner.get("host") != hostname():
        return None
    pid = owner.get("pid")
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = owner.get("start")
    if start is not None:
        current = process_start(pid)
        if current is not None and current != start:
            return False  # the pid was reused by another process
    return True


def pause_point(point: str) -> None:
    """Test hook: stop this process here if JUPYTER_ENV_MANAGER_TEST_PAUSE_AT names ``point``."""
    wanted = os.environ.get(PAUSE_ENV)
    if wanted and point in wanted.split(","):
        os.kill(os.getpid(), signal.SIGSTOP)


def host_owner() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": hostname(),
        "pid": pid,
        "start": process_start(pid),
        "since": time.time(),
    }
