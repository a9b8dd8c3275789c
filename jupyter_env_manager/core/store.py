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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
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
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        if mode is not None:
            os.fchmod(f.fileno(), mode)
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
    owner: dict[str, Any] = field(default_factory=dict)  # {"host", "pid"} of who runs it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """The REST shape (no owner). Listing calls this per environment: no deep copy."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "owner"}
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
        """Claim the next version number with an atomic mkdir (safe across hosts on NFS)."""
        base = self.env_dir(name) / "builds"
        version = (self.versions(name) or [0])[-1] + 1
        while True:
            try:
                self._mkdir(base / str(version))
                break
            except FileExistsError:
                version += 1
        build.version = version
        self.write_build(name, build)
        return build

    def log_path(self, name: str, version: int) -> Path:
        return self.build_dir(name, version) / "log.txt"

    # -- locks -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def env_lock(self, name: str) -> Iterator[None]:
        """A short critical section on one environment's metadata (across processes)."""
        fd = open_lock(self.env_dir(name) / "env.lock", self.access)
        try:
            self._flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def build_lock_path(self, name: str) -> Path:
        return self.env_dir(name) / "build.lock"

    def try_build_lock(self, name: str) -> int | None:
        """Take the build lock without waiting; returns the fd holding it, or None if taken."""
        fd = open_lock(self.build_lock_path(name), self.access)
        try:
            self._flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
            if err.errno != errno.ENOLCK:
                raise
            raise EnvManagerError(
                f"The {self.scope} store {self.root} does not support file locks, which keep "
                "two builds of one environment apart: on NFS, use NFSv4 or run lockd "
                "(NFSv3), or mount without 'nolock'"
            ) from None

    def build_is_alive(self, name: str, build: Build) -> bool:
        """Whether a queued/running build still has a live owner."""
        if build.status == "running":
            fd = self.try_build_lock(name)
            if fd is None:
                return True
            os.close(fd)
            return False
        owner = build.owner or {}
        if owner.get("host") != socket.gethostname():
            return True  # another machine's queue: we cannot tell, trust it
        pid = owner.get("pid")
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def reap(self, name: str, build: Build) -> Build:
        """Mark a dead queued/running build interrupted and clear its staging leftovers."""
        if build.status in LIVE and not self.build_is_alive(name, build):
            if not os.access(self.build_dir(name, build.version), os.W_OK):
                return build  # a teammate's, in a store read-only for us: its owner will
            with self.env_lock(name):
                build = self.read_build(name, build.version)
                if build.status in LIVE and not self.build_is_alive(name, build):
                    build.status = "interrupted"
                    build.error = build.error or "The build was interrupted (its process ended)"
                    build.finished_at = build.finished_at or now()
                    self.write_build(name, build)
                    self.recover_swap(name)
                    self.remove_tree(self.staging_dir(name, build.version))
        return build

    # -- putting a prefix in use -------------------------------------------------------------

    def swap_in(
        self, name: str, staging: Path, version: int, summary: dict[str, Any] | None = None
    ) -> None:
        """Put a finished staging prefix in use as ``<root>/<name>``, crash-safely.

        A journal names the version being swapped in; :meth:`recover_swap` finishes or undoes
        a swap that a crash cut short, so the prefix in use is always a complete one.
        """
        target = self.prefix(name)
        (staging / MARKER).write_text(json.dumps({"version": version}))
        journal = self.env_dir(name) / "swap.json"
        self._write_json(journal, {"version": version, "staging": str(staging), "summary": summary})
        old = None
        if target.exists():
            old = self.trash / f"{name}.{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        os.rename(staging, target)
        state = self.read_state(name)
        state.update(summary or {}, active_version=version)
        self.write_state(name, state)
        journal.unlink()
        if old is not None:
            self.remove_tree(old)

    def recover_swap(self, name: str) -> None:
        journal = self.env_dir(name) / "swap.json"
        data = read_json(journal)
        if not data:
            return
        target = self.prefix(name)
        if target.exists():
            marker = read_json(target / MARKER, {}) or {}
            if marker.get("version") == data["version"]:
                state = self.read_state(name)
                state.update(data.get("summary") or {}, active_version=data["version"])
                self.write_state(name, state)
        else:
            # Crashed between the two renames: put the newest trashed prefix of this env back.
            candidates = sorted(
                self.trash.glob(f"{name}.*"), key=lambda p: p.stat().st_mtime, reverse=True
            )
            staging = Path(data.get("staging", ""))
            if staging.is_dir() and (staging / MARKER).exists():
                os.rename(staging, target)
                state = self.read_state(name)
                state.update(data.get("summary") or {}, active_version=data["version"])
                self.write_state(name, state)
            elif candidates:
                os.rename(candidates[0], target)
        journal.unlink(missing_ok=True)

    def recover(self) -> list[tuple[str, int]]:
        """At start: finish cut-short swaps, mark dead builds interrupted, clear leftovers."""
        reaped = []
        for name in self.managed_names():
            try:
                self.recover_swap(name)
                build = self.latest_build(name)
                if build and build.status in LIVE:
                    after = self.reap(name, build)
                    if after.status == "interrupted" and build.status != after.status:
                        reaped.append((name, build.version))
            except OSError:
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
            for entry in self.trash.iterdir():
                self.remove_tree(entry)
        return reaped

    def remove_tree(self, path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)

    def delete_env(self, name: str) -> None:
        """Remove prefix and metadata: the prefix is first renamed away (atomic)."""
        target = self.prefix(name)
        if target.exists():
            self._mkdir(self.trash, exist_ok=True)
            gone = self.trash / f"{name}.{uuid.uuid4().hex[:8]}"
            os.rename(target, gone)
            self.remove_tree(gone)
        meta = self.env_dir(name)
        if meta.exists():
            gone = self.trash / f"meta-{name}.{uuid.uuid4().hex[:8]}"
            os.rename(meta, gone)
            self.remove_tree(gone)
        for entry in (self.meta / "staging").glob(f"{name}.v*"):
            self.remove_tree(entry)


def host_owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
