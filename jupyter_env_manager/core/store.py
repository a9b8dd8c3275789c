"""A store: one root directory of conda prefixes plus our metadata beside them.

Layout (``<root>`` is a conda envs directory, so conda/mamba see ordinary environments)::

    <root>/<name>/                       the prefix in use (conda-meta/*.json records)
    <root>/.envmgr/store.json            {"format": 1}
    <root>/.envmgr/envs/<name>/env.json  spec, display name, created/updated, created_by
    <root>/.envmgr/envs/<name>/state.json  {"active_version": N}
    <root>/.envmgr/envs/<name>/builds/<N>/{build.json,spec.json,lock.json,rattler-lock.yml,log.txt}
    <root>/.envmgr/staging/<name>.v<N>/  a build being assembled (never listed, never in use)
    <root>/.envmgr/trash/                prefixes on their way out

Designed for many writers on one (NFS) directory: version numbers are claimed with an atomic
``mkdir``, metadata is replaced with ``rename``, a running build holds an ``flock`` on its
environment's ``build.lock`` (released by the kernel when its process dies, which is how an
interrupted build is recognised), and no per-user state lives here. In the shared store,
whatever we make grants the team what the root grants (see :mod:`.access`).

Build lifecycle guarantees (what the reliability tests check):

- Every lock wait is bounded (:data:`LOCK_WAIT_S`) and ends in a :class:`Conflict` naming the
  environment; ``env_lock`` is re-entrant within a thread, so no path waits on a lock it holds.
- One commit point: a build is in use, and succeeded, exactly when the rename of its staging
  prefix onto ``<root>/<name>`` has happened; the prefix carries the build's marker (version and
  build id), so after any kill :meth:`Store.finish` (called by the worker, its parent, or a
  reaper) records "vN succeeded and in use" or "vN did not happen and v(N-1) is in use".
- Builds are told apart by a unique id (``build.json``), never by (scope, name, version) alone:
  a recreated environment's v1 is never taken for the deleted one's.
- A queued build whose owner (same host, pid and process start time) is gone, and a running
  build whose worker no longer holds ``build.lock``, are ended as interrupted with a reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .access import Access, open_lock
from .errors import Conflict, EnvManagerError, Forbidden, NotFound, ValidationError
from .spec import MAX_PREFIX_LENGTH, EnvSpec

META = ".envmgr"
STORE_FORMAT = 1
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")
LIVE = ("queued", "running")
# In a build's directory: why its worker is being terminated, when that is not a cancel.
STOP_REASON = "stop.json"
# Written into each prefix we put in use: which of our builds it is.
MARKER = "conda-meta/envmgr-build"
# In a build's directory: a cancel asked for by a process that does not own the worker.
CANCEL_REQUEST = "cancel.json"
# How long a process waits for an environment's lock before answering 409 (seconds).
LOCK_WAIT_S = float(os.environ.get("JUPYTER_ENV_MANAGER_LOCK_WAIT_S", "20"))
# Test hook: a worker stops itself (SIGSTOP) at these named points, so a test can kill it there.
PAUSE_ENV = "JUPYTER_ENV_MANAGER_TEST_PAUSE_AT"

_held = threading.local()  # env locks this thread holds: {(root, name): depth}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def current_user() -> str:
    for var in ("JUPYTERHUB_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover
        return str(os.getuid())


def write_json(path: Path, data: Any, mode: int | None = None) -> None:
    """Replace ``path`` atomically (readers see the old or the new file, never half of one)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    with open(fd, "w") as f:
        if mode is not None:  # never more open than ``mode``, not even for a moment
            os.fchmod(f.fileno(), mode)
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
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


class Store:
    """One root directory (the local store or the shared store)."""

    def __init__(self, root: str | Path, scope: str):
        self.root = Path(root)
        self.scope = scope
        self.meta = self.root / META
        self._access: Access | None = None

    # -- permissions -------------------------------------------------------------------------

    @property
    def access(self) -> Access | None:
        """The shared store's policy, read from its root (None: the local store, or no root)."""
        if self._access is None and self.scope == "shared":
            try:
                self._access = Access.of(self.root)
            except FileNotFoundError:
                return None
        return self._access

    def _mkdir(self, path: Path, exist_ok: bool = False) -> None:
        """``mkdir`` one directory of ours (its parent exists), with the store's mode."""
        try:
            path.mkdir()
        except FileExistsError:
            if not exist_ok:
                raise
            return
        if self.access is not None:
            self.access.apply(path)

    def _write_json(self, path: Path, data: Any) -> None:
        write_json(path, data, self.access.file_mode() if self.access else None)

    def new_file(self, path: Path, text: str = "") -> None:
        """Write a small file of ours (job.json, an empty log), with the store's mode."""
        path.write_text(text)
        if self.access is not None:
            self.access.apply(path)

    def permission(self) -> str:
        """What this user may do here, by the file permissions: "write", "read" or "none"."""
        probe = self.meta / "envs"
        while not os.path.exists(probe) and probe != probe.parent:
            probe = probe.parent  # not made yet: whoever may make it may write
        if os.access(probe, os.W_OK | os.X_OK):
            return "write"
        return "read" if os.access(probe, os.R_OK | os.X_OK) else "none"

    def unreadable(self) -> Forbidden:
        return Forbidden(
            f"You ({current_user()}) may not read the {self.scope} store {self.root} "
            "(ask its owner to give your group read access)"
        )

    def check_writable(self, name: str | None = None) -> None:
        """Refuse (403) a change this user's file permissions would not let through.

        Without a name: making a new environment in the store. With one: changing that
        environment (build, revert, edit, delete).
        """
        denial = self.write_denial(name)
        if denial is not None:
            raise Forbidden(denial, item=name)

    def write_denial(self, name: str | None = None) -> str | None:
        """Why this user may not make (or, with a name, change) an environment here; None if
        they may. The same sentence is a 403's message and a disabled action's reason."""
        dirs = [self.env_dir(name), self.env_dir(name) / "builds"] if name else []
        envs = self.meta / "envs"
        dirs.append(envs if os.path.exists(envs) else self.root)
        for d in dirs:
            if os.path.exists(d) and not os.access(d, os.W_OK | os.X_OK):
                what = f"environment {name!r} in the" if name else "the"
                return (
                    f"You ({current_user()}) may not change {what} {self.scope} store: "
                    f"{d} is not writable for you (ask the store's owner: its root's group "
                    "needs write permission, e.g. chmod 2775)"
                )
        return None

    # -- paths -------------------------------------------------------------------------------

    def prefix(self, name: str) -> Path:
        return self.root / name

    def env_dir(self, name: str) -> Path:
        return self.meta / "envs" / name

    def build_dir(self, name: str, version: int) -> Path:
        return self.env_dir(name) / "builds" / str(version)

    def staging_dir(self, name: str, version: int) -> Path:
        return self.meta / "staging" / f"{name}.v{version}"

    @property
    def trash(self) -> Path:
        return self.meta / "trash"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._mkdir(self.meta, exist_ok=True)
        for d in (self.meta / "envs", self.meta / "staging", self.trash):
            self._mkdir(d, exist_ok=True)
        store_file = self.meta / "store.json"
        if not store_file.exists():
            self._write_json(store_file, {"format": STORE_FORMAT, "created_at": now()})

    def check_prefix_length(self, name: str) -> None:
        length = len(str(self.prefix(name)))
        if length > MAX_PREFIX_LENGTH:
            raise ValidationError(
                f"Environment name {name!r} makes the prefix {length} characters long in the "
                f"{self.scope} store; conda packages allow at most {MAX_PREFIX_LENGTH}",
                field="name",
                item=name,
            )

    # -- listing -----------------------------------------------------------------------------

    def managed_names(self) -> list[str]:
        try:
            return sorted(
                e.name for e in os.scandir(self.meta / "envs") if e.is_dir() and e.name[0] != "."
            )
        except FileNotFoundError:
            return []
        except PermissionError:
            raise self.unreadable() from None

    def unmanaged_names(self, managed: set[str] | None = None) -> list[str]:
        """Conda prefixes in the root that we did not create (made by conda, mamba, ...)."""
        managed = set(self.managed_names()) if managed is None else managed
        names = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        except PermissionError:
            raise self.unreadable() from None
        for e in entries:
            if e.name[0] == "." or e.name in managed or not e.is_dir():
                continue
            if os.path.isdir(os.path.join(e.path, "conda-meta")):
                names.append(e.name)
        return sorted(names)

    def exists(self, name: str) -> bool:
        try:
            return (self.env_dir(name) / "env.json").exists()
        except PermissionError:
            raise self.unreadable() from None

    # -- metadata ----------------------------------------------------------------------------

    def read_env(self, name: str) -> EnvRecord:
        data = read_json(self.env_dir(name) / "env.json")
        if data is None:
            raise NotFound(f"No environment {name!r} in the {self.scope} store")
        return EnvRecord.from_dict(data)

    def write_env(self, name: str, record: EnvRecord) -> None:
        self._write_json(self.env_dir(name) / "env.json", record.to_dict())

    def create_env(self, record: EnvRecord, existing_prefix: bool = False) -> None:
        """Claim the name atomically; a second creator gets a conflict.

        ``existing_prefix``: adopting a prefix made by conda/mamba (otherwise a prefix of that
        name that is not ours is a conflict).
        """
        name = record.spec.name
        self.ensure()
        if not existing_prefix and self.prefix(name).exists() and not self.exists(name):
            raise Conflict(
                f"A conda environment named {name!r} already exists in the {self.scope} store "
                "(not made by this extension: adopt it instead)",
                field="name",
                item=name,
            )
        try:
            self._mkdir(self.env_dir(name))
        except FileExistsError:
            raise Conflict(
                f"An environment named {name!r} already exists in the {self.scope} store",
                field="name",
                item=name,
            ) from None
        self._mkdir(self.env_dir(name) / "builds")
        self.write_env(name, record)

    def read_state(self, name: str) -> dict[str, Any]:
        return read_json(self.env_dir(name) / "state.json", {}) or {}

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        self._write_json(self.env_dir(name) / "state.json", state)

    def active_version(self, name: str) -> int | None:
        return self.read_state(name).get("active_version")

    # -- builds ------------------------------------------------------------------------------

    def versions(self, name: str) -> list[int]:
        try:
            return sorted(
                int(e.name) for e in os.scandir(self.env_dir(name) / "builds") if e.name.isdigit()
            )
        except FileNotFoundError:
            return []

    def read_build(self, name: str, version: int) -> Build:
        data = read_json(self.build_dir(name, version) / "build.json")
        if data is None:
            raise NotFound(f"Environment {name!r} has no version {version}")
        return Build.from_dict(data)

    def write_build(self, name: str, build: Build) -> None:
        self._write_json(self.build_dir(name, build.version) / "build.json", build.to_dict())

    def latest_build(self, name: str) -> Build | None:
        versions = self.versions(name)
        while versions:
            try:
                return self.read_build(name, versions.pop())
            except NotFound:  # a version directory claimed a moment ago, not yet written
                continue
        return None

    def allocate_build(self, name: str, build: Build) -> Build:
        """Claim the next version number with an atomic mkdir (safe across hosts on NFS).

        Numbers are never given twice: ``next_version`` in state.json is a high-water mark,
        so the number of a deleted latest version is not reused.
        """
        base = self.env_dir(name) / "builds"
        with self.env_lock(name):
            state = self.read_state(name)
            version = max((self.versions(name) or [0])[-1] + 1, state.get("next_version", 1))
            while True:
                try:
                    self._mkdir(base / str(version))
                    break
                except FileExistsError:
                    version += 1
            state = self.read_state(name)
            state["next_version"] = version + 1
            self.write_state(name, state)
            build.version = version
            build.id = build.id or uuid.uuid4().hex
            self.write_build(name, build)
        return build

    def build_of(self, name: str, version: int, build_id: str | None) -> Build | None:
        """The build ``version`` if it is still the one with ``build_id`` (None: it is gone, or
        the environment was deleted and this version number belongs to a new one)."""
        try:
            build = self.read_build(name, version)
        except NotFound:
            return None
        return build if not build_id or build.id == build_id else None

    def log_path(self, name: str, version: int) -> Path:
        return self.build_dir(name, version) / "log.txt"

    # -- locks -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def env_lock(self, name: str) -> Iterator[None]:
        """A short critical section on one environment's metadata (across processes).

        Re-entrant within a thread (a nested call does not wait on the lock its caller holds);
        across threads and processes a wait is bounded by :data:`LOCK_WAIT_S`, then 409.
        """
        held = _held.__dict__.setdefault("locks", {})
        key = (str(self.root), name)
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        try:
            fd = open_lock(self.env_dir(name) / "env.lock", self.access)
        except FileNotFoundError:
            raise NotFound(f"No environment {name!r} in the {self.scope} store") from None
        try:
            self._flock_wait(fd, name)
            held[key] = 1
            yield
        finally:
            held.pop(key, None)
            os.close(fd)  # releases the lock

    def _flock_wait(self, fd: int, name: str) -> None:
        """Take an exclusive lock, waiting at most LOCK_WAIT_S (polling: flock has no timeout)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.005
        while True:
            try:
                self._flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise Conflict(
                    f"Environment {name!r} in the {self.scope} store is locked by another "
                    f"process (waited {LOCK_WAIT_S:g} s for its lock): try again",
                    item=name,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def build_lock_path(self, name: str) -> Path:
        return self.env_dir(name) / "build.lock"

    def try_build_lock(self, name: str, operation: int = fcntl.LOCK_EX) -> int | None:
        """Take the build lock without waiting; returns the fd holding it, or None if taken.

        ``LOCK_SH`` only tests whether a build holds it: that works on a read-only descriptor
        also on NFS (a user outside the store's group)."""
        try:
            fd = open_lock(self.build_lock_path(name), self.access)
        except FileNotFoundError:
            raise NotFound(f"No environment {name!r} in the {self.scope} store") from None
        try:
            self._flock(fd, operation | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise
        except EnvManagerError:
            os.close(fd)
            raise
        return fd

    def _flock(self, fd: int, operation: int) -> None:
        try:
            fcntl.flock(fd, operation)
        except OSError as err:
            if err.errno == errno.EBADF:  # NFS: an exclusive lock needs a writable descriptor
                raise Forbidden(
                    f"You ({current_user()}) may not lock environments in the {self.scope} store "
                    f"{self.root}: its lock files are writable by its group only (ask the "
                    "store's owner to add you to the group)"
                ) from None
            if err.errno != errno.ENOLCK:
                raise
            raise EnvManagerError(
                f"The {self.scope} store {self.root} does not support file locks, which keep "
                "two builds of one environment apart: on NFS, use NFSv4 or run lockd "
                "(NFSv3), or mount without 'nolock'"
            ) from None

    def build_locked(self, name: str) -> bool:
        """Whether a worker holds the environment's build lock (one is running, anywhere).

        Tested with a shared lock, which a read-only descriptor may take also on NFS."""
        try:
            fd = self.try_build_lock(name, fcntl.LOCK_SH)
        except PermissionError:  # a store read-only for us, where no lock file was made yet:
            return self.build_lock_path(name).exists()  # none, then no build ever ran
        if fd is None:
            return True
        os.close(fd)
        return False

    def build_is_alive(self, name: str, build: Build) -> bool:
        """Whether a queued/running build still has a live owner.

        Running: its worker holds the build lock. Queued: a worker is starting it (the lock is
        held), or the process that queued it is alive (same host: pid and start time; another
        host's queue cannot be checked from here and is trusted).
        """
        if build.status == "running":
            return self.build_locked(name)
        if self.build_locked(name):
            return True
        return owner_alive(build.owner or {}) is not False

    def reap(self, name: str, build: Build) -> Build:
        """End a queued/running build whose owner is gone (see :meth:`finish`)."""
        if build.status in LIVE and not self.build_is_alive(name, build):
            if not os.access(self.build_dir(name, build.version), os.W_OK):
                return build  # a teammate's, in a store read-only for us: its owner will
            if build.status == "running":
                reason = "The build was interrupted (its worker process ended)"
            else:
                owner = build.owner or {}
                reason = (
                    "The build was interrupted (the process that queued it, pid "
                    f"{owner.get('pid')} on {owner.get('host')}, ended before it started)"
                )
            try:
                return self.finish(
                    name, build.version, "interrupted", reason, build_id=build.id, if_dead=True
                )
            except NotFound:
                return build
        return build

    def finish(
        self,
        name: str,
        version: int,
        status: str,
        error: str | None,
        *,
        build_id: str | None = None,
        clear_staging: bool = True,
        if_dead: bool = False,
    ) -> Build:
        """Record the end of a build: the one place a build becomes terminal.

        Called by the worker itself, by whoever started it once it exited, or by a reaper
        (``if_dead``: only if its owner is still gone, checked under the lock). A swap cut short
        is finished or undone first; then the prefix in use decides: if it carries this build's
        marker the build succeeded (whatever ``status`` says: it is in use), otherwise it did
        not and the previous version stays. Staging (unless ``clear_staging`` is false: a
        cancelled worker's threads may still write there) and this environment's trash go.
        """
        leftovers: list[Path] = []
        if clear_staging and not if_dead and self.build_of(name, version, build_id):
            # First free the space (a full disk may be why it failed), then record the end.
            self.remove_tree(self.staging_dir(name, version))
        with self.env_lock(name):
            build = self.build_of(name, version, build_id)
            if build is None:
                raise NotFound(f"Environment {name!r} has no build {version} (id {build_id})")
            if build.status in LIVE and not (if_dead and self.build_is_alive(name, build)):
                self.recover_swap(name)
                if self.committed(name, build):
                    status, error = "succeeded", None
                    state = self.read_state(name)
                    if state.get("active_version") != version:
                        state["active_version"] = version
                        self.write_state(name, state)
                elif status == "succeeded":
                    status, error = "failed", "The new version was not put in use"
                build.status, build.error, build.finished_at = status, error, now()
                if build.phases:
                    build.phases[-1].setdefault("finished_at", build.finished_at)
                self.write_build(name, build)
            if build.status not in LIVE:
                staging = self.staging_dir(name, version)
                if clear_staging and staging.exists():
                    leftovers.append(self._to_trash(staging, name))
                leftovers += self.trash_of(name)
        for path in leftovers:
            self.remove_tree(path)
        return build

    def committed(self, name: str, build: Build) -> bool:
        """Whether ``build`` is the one in use (the prefix carries its marker)."""
        marker = read_json(self.prefix(name) / MARKER, {}) or {}
        if marker.get("build_id") and build.id:
            return marker["build_id"] == build.id
        return marker.get("version") == build.version and build.status in LIVE

    def trash_of(self, name: str) -> list[Path]:
        """This environment's old prefixes in the trash (no swap of it is under way: the
        caller holds its env lock, and swaps hold it from journal to rename)."""
        try:
            entries = list(os.scandir(self.trash))
        except FileNotFoundError:
            return []
        return [
            Path(e.path)
            for e in entries
            if e.name.rpartition(".")[0] == name and len(e.name.rpartition(".")[2]) == 8
        ]

    def _to_trash(self, path: Path, name: str) -> Path:
        self._mkdir(self.trash, exist_ok=True)
        gone = self.trash / f"{name}.{uuid.uuid4().hex[:8]}"
        os.rename(path, gone)
        return gone

    # -- cancel requests ---------------------------------------------------------------------

    def request_cancel(self, name: str, version: int, by: str) -> None:
        """Ask the worker of a build to cancel it (it polls for this file)."""
        path = self.build_dir(name, version) / CANCEL_REQUEST
        self._write_json(path, {"by": by, "at": now(), "host": socket.gethostname()})

    def cancel_requested(self, name: str, version: int) -> dict[str, Any] | None:
        return read_json(self.build_dir(name, version) / CANCEL_REQUEST)

    # -- putting a prefix in use -------------------------------------------------------------

    def swap_in(
        self,
        name: str,
        staging: Path,
        build_id: str,
        version: int,
        summary: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """Put a finished staging prefix in use as ``<root>/<name>``: the build's commit point.

        Under the env lock, and only if the build is still this environment's running build
        ``build_id`` (a deleted or recreated environment gets nothing). A journal names the
        swap; :meth:`recover_swap` finishes or undoes one that a crash cut short. ``spec``
        (a revert) becomes the environment's spec in the same step.
        """
        target = self.prefix(name)
        journal = self.env_dir(name) / "swap.json"
        with self.env_lock(name):
            build = self.build_of(name, version, build_id)
            if build is None or build.status != "running" or not self.exists(name):
                raise Conflict(
                    f"Environment {name!r} was deleted or recreated during build v{version}: "
                    "its result is not put in use",
                    item=name,
                )
            (staging / MARKER).write_text(json.dumps({"version": version, "build_id": build_id}))
            old = self.trash / f"{name}.{uuid.uuid4().hex[:8]}" if target.exists() else None
            self._write_json(
                journal,
                {
                    "version": version,
                    "build_id": build_id,
                    "staging": str(staging),
                    "old": str(old) if old else None,
                    "summary": summary,
                    "spec": spec,
                },
            )
            if old is not None:
                self._mkdir(self.trash, exist_ok=True)
                os.rename(target, old)
            os.rename(staging, target)  # the commit point
            pause_point("swap")
            self._committed_swap(name, version, summary, spec)
            journal.unlink()
        if old is not None:
            self.remove_tree(old)

    def _committed_swap(
        self, name: str, version: int, summary: dict[str, Any] | None, spec: dict[str, Any] | None
    ) -> None:
        state = self.read_state(name)
        state.update(summary or {}, active_version=version)
        self.write_state(name, state)
        if spec is not None:
            record = self.read_env(name)
            record.spec = EnvSpec.from_dict(spec)
            record.updated_at = now()
            self.write_env(name, record)

    def recover_swap(self, name: str) -> None:
        """Finish (the new prefix is in place, or complete in staging) or undo (put the old one
        back) a swap cut short. Call with the env lock held."""
        journal = self.env_dir(name) / "swap.json"
        data = read_json(journal)
        if not data:
            return
        target = self.prefix(name)
        mine = {"version": data["version"]}
        if data.get("build_id"):
            mine["build_id"] = data["build_id"]

        def carries(prefix: Path) -> bool:
            marker = read_json(prefix / MARKER, {}) or {}
            return all(marker.get(k) == v for k, v in mine.items())

        summary, spec = data.get("summary"), data.get("spec")
        if target.exists():
            if carries(target):
                self._committed_swap(name, data["version"], summary, spec)
        else:
            staging = Path(data.get("staging") or "/nonexistent")
            old = Path(data["old"]) if data.get("old") else None
            if staging.is_dir() and carries(staging):
                os.rename(staging, target)
                self._committed_swap(name, data["version"], summary, spec)
            elif old is not None and old.is_dir():
                os.rename(old, target)
            elif old is None:  # a journal of an older version: the newest trashed prefix
                candidates = sorted(
                    self.trash_of(name), key=lambda p: p.stat().st_mtime, reverse=True
                )
                if candidates:
                    os.rename(candidates[0], target)
        journal.unlink(missing_ok=True)

    def recover(self) -> list[tuple[str, int]]:
        """At start: finish cut-short swaps, mark dead builds interrupted, clear leftovers."""
        reaped = []
        managed = self.managed_names()
        for name in managed:
            try:
                with self.env_lock(name):
                    self.recover_swap(name)
                    build = self.latest_build(name)
                    if build and build.status in LIVE:
                        after = self.reap(name, build)
                        if after.status == "interrupted" and build.status != after.status:
                            reaped.append((name, build.version))
                    if not (self.env_dir(name) / "swap.json").exists():
                        for path in self.trash_of(name):
                            self.remove_tree(path)
            except (OSError, EnvManagerError):
                continue
        staging = self.meta / "staging"
        if staging.is_dir():
            for entry in staging.iterdir():
                name, _, v = entry.name.rpartition(".v")
                live = False
                if name and v.isdigit() and self.exists(name):
                    try:
                        b = self.read_build(name, int(v))
                        live = b.status in LIVE and self.build_is_alive(name, b)
                    except NotFound:
                        live = False
                if not live:
                    self.remove_tree(entry)
        if self.trash.is_dir():
            # A managed environment's old prefixes went above, under its lock (one may be the
            # way back of a swap under way elsewhere); the rest (deleted metadata) goes now.
            for entry in self.trash.iterdir():
                if entry.name.rpartition(".")[0] not in managed:
                    self.remove_tree(entry)
        return reaped

    def remove_tree(self, path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)

    def delete_env(self, name: str) -> None:
        """Remove prefix and metadata (each first renamed away, atomically).

        Refused (409) while a build of it runs anywhere: its build lock is taken, without
        waiting, for the whole delete, so no worker can start, swap or record meanwhile.
        """
        fd = self.try_build_lock(name)
        if fd is None:
            raise Conflict(
                f"A build of {name!r} is running (its worker holds the build lock): cancel it "
                "or wait for it to end",
                item=name,
            )
        gone: list[Path] = []
        try:
            with self.env_lock(name):
                latest = self.latest_build(name)
                if latest and latest.status in LIVE and self.build_is_alive(name, latest):
                    raise Conflict(
                        f"Build v{latest.version} of {name!r} is {latest.status}: cancel it first",
                        item=name,
                    )
                self._mkdir(self.trash, exist_ok=True)
                if self.prefix(name).exists():
                    gone.append(self._to_trash(self.prefix(name), name))
                meta = self.trash / f"meta-{name}.{uuid.uuid4().hex[:8]}"
                os.rename(self.env_dir(name), meta)
                gone.append(meta)
                for entry in (self.meta / "staging").glob(f"{name}.v*"):
                    gone.append(self._to_trash(entry, name))
        finally:
            os.close(fd)
        for path in gone:
            self.remove_tree(path)


def process_start(pid: int) -> int | None:
    """A process's start time (clock ticks after boot, /proc/PID/stat field 22): with the pid,
    it names one process (a pid alone may have been reused)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process an owner record names still runs: None on another host (unknown)."""
    if owner.get("host") != socket.gethostname():
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
        "host": socket.gethostname(),
        "pid": pid,
        "start": process_start(pid),
        "since": time.time(),
    }
