"""A store's layout: one root directory of conda prefixes plus our metadata beside them.

Layout (``<root>`` is a conda envs directory, so conda/mamba see ordinary environments)::

    <root>/<name> -> .envmgr/prefixes/<name>/v<N>-<id>   the version in use (a relative symlink)
    <root>/.envmgr/prefixes/<name>/v<N>-<id>/  one version's prefix (conda-meta/*.json records)
    <root>/.envmgr/store.json            {"format": 1}
    <root>/.envmgr/envs/<name>/env.json  spec, display name, created/updated, created_by
    <root>/.envmgr/envs/<name>/state.json  {"active_version": N}
    <root>/.envmgr/envs/<name>/builds/<N>/{build.json,spec.json,lock.json,rattler-lock.yml,log.txt}
    <root>/.envmgr/staging/<name>.v<N>/  a build being assembled (never listed, never in use)
    <root>/.envmgr/live/<host>.<pid>.<start>.json  a running kernel's liveness record
    <root>/.envmgr/trash/                prefixes and metadata on their way out

Designed for many writers on one (NFS) directory: version numbers are claimed with an atomic
``mkdir``, metadata is replaced with ``rename``, a running build holds an ``flock`` on its
environment's ``build.lock`` (released by the kernel when its process dies, which is how an
interrupted build is recognised), and no per-user state lives here. In the shared store,
whatever we make grants the team what the root grants (see :mod:`.access`).

Each version lives in its own directory and never moves: a kernel started on it keeps its
files, and conda tools and users see ``<root>/<name>``, which is switched from one version to
the next by renaming a new symlink over it (one atomic step). An environment made by the first
release (``<root>/<name>`` a directory) moves under ``prefixes/`` at its next build.

The build lifecycle (reap, finish, the switch and its recovery, delete) is :mod:`.store`'s;
which version directories are kept is :mod:`.retention`'s.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .access import Access, open_lock
from .bodies import VERSION_RE
from .errors import Conflict, EnvManagerError, Forbidden, NotFound, ValidationError
from .records import (
    STORE_FORMAT,
    Build,
    EnvRecord,
    current_user,
    now,
    owner_alive,
    random_hex,
    read_json,
    write_json,
)
from .spec import MAX_PREFIX_LENGTH

META = ".envmgr"
# How long a process waits for an environment's lock before answering 409 (seconds).
LOCK_WAIT_S = float(os.environ.get("JUPYTER_ENV_MANAGER_LOCK_WAIT_S", "20"))
PROBE_WAIT_S = 2.0  # how long a build lock may be looked at (held shared) before a taker gives up

_held = threading.local()  # env locks this thread holds: {(root, name): depth}


class StoreLayout:
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

    def _write_json(self, path: Path, data: Any, durable: bool = True) -> None:
        write_json(path, data, self.access.file_mode() if self.access else None, durable)

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
        """The environment's usual path (conda's, environments.txt's): the version in use."""
        return self.root / name

    def versions_dir(self, name: str) -> Path:
        return self.meta / "prefixes" / name

    def version_prefix(self, name: str, version: int, build_id: str) -> Path:
        """Where version ``version`` (build ``build_id``) lives, for as long as it is kept."""
        return self.versions_dir(name) / f"v{version}-{build_id[:8]}"

    def active_prefix(self, name: str) -> Path:
        """The directory of the version in use (the usual path with its symlink resolved)."""
        return Path(os.path.realpath(self.prefix(name)))

    def link_target(self, name: str, directory: Path) -> str:
        """The symlink text for ``<root>/<name>`` -> ``directory``: relative to the root, so
        the store works wherever it is mounted."""
        return os.path.relpath(directory, self.root)

    def name_at(self, path: str | os.PathLike[str]) -> str | None:
        """The environment whose usual path or version directory ``path`` is, if any."""
        real = Path(os.path.realpath(path))
        if real.parent == Path(os.path.realpath(self.root)):
            return real.name
        if real.parent.parent == Path(os.path.realpath(self.meta / "prefixes")):
            return real.parent.name
        return None

    def version_at(self, path: str | os.PathLike[str]) -> int | None:
        """The version whose directory ``path`` is (or resolves to), from its build marker."""
        from .identity import MARKER

        marker = read_json(Path(os.path.realpath(path)) / MARKER, {}) or {}
        version = marker.get("version")
        return version if isinstance(version, int) else None

    @property
    def live_dir(self) -> Path:
        return self.meta / "live"

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
        for d in (self.meta / "envs", self.meta / "staging", self.meta / "prefixes", self.trash):
            self._mkdir(d, exist_ok=True)
        if not self.live_dir.exists():  # every user of the store records their kernels here:
            self._mkdir(self.live_dir, exist_ok=True)  # sticky, so no one removes another's
            os.chmod(self.live_dir, os.stat(self.live_dir).st_mode | 0o1000)
        store_file = self.meta / "store.json"
        if not store_file.exists():
            self._write_json(store_file, {"format": STORE_FORMAT, "created_at": now()})

    def check_prefix_length(self, name: str) -> None:
        # Packages are linked for the version directory: its longest form must fit.
        length = len(str(self.version_prefix(name, 10**9 - 1, "f" * 8)))
        if length > MAX_PREFIX_LENGTH:
            raise ValidationError(
                f"Environment name {name!r} makes its prefixes {length} characters long in the "
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
        return self.root_folders(managed)[0]

    def root_folders(self, managed: Iterable[str]) -> tuple[list[str], list[str]]:
        """(unmanaged prefixes' names, paths of the other folders), sorted, of the root's
        entries that are not ``managed`` and not hidden: only those are looked at (a few, of
        thousands of environments' symlinks and folders)."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return [], []
        except PermissionError:
            raise self.unreadable() from None
        prefixes: list[str] = []
        others: list[str] = []
        for name in sorted(set(entries).difference(managed)):
            if name[0] == ".":
                continue
            path = os.path.join(self.root, name)
            if os.path.isdir(os.path.join(path, "conda-meta")):
                prefixes.append(name)
            elif os.path.isdir(path):
                others.append(path)
        return prefixes, others

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
        # Made with the environment: a request that takes the lock and then refuses (a 4xx)
        # leaves nothing behind, not even the lock file.
        os.close(open_lock(self.env_dir(name) / "env.lock", self.access))
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
                int(e.name)
                for e in os.scandir(self.env_dir(name) / "builds")
                if VERSION_RE.fullmatch(e.name)
            )
        except FileNotFoundError:
            return []

    def read_build(self, name: str, version: int) -> Build:
        data = read_json(self.build_dir(name, version) / "build.json")
        if data is None:
            raise NotFound(f"Environment {name!r} has no version {version}")
        return Build.from_dict(data)

    def write_build(self, name: str, build: Build, durable: bool = True) -> None:
        """Replace a build's record (atomic); ``durable=False`` for progress (its phases),
        which a power cut may lose: see :func:`write_json`."""
        path = self.build_dir(name, build.version) / "build.json"
        self._write_json(path, build.to_dict(), durable)

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
            build.id = build.id or random_hex(16)
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
        path = self.env_dir(name) / "env.lock"
        try:
            fd = open_lock(path, self.access)
        except FileNotFoundError:
            raise NotFound(f"No environment {name!r} in the {self.scope} store") from None
        try:
            self._flock_wait(fd, name)
            # The holder we waited for may have deleted the environment (its metadata renamed
            # into the trash, our lock file with it), and someone may have made it again: the
            # lock is this environment's only while its file is still at its path.
            if not _same_file(fd, path):
                raise NotFound(f"No environment {name!r} in the {self.scope} store")
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
        path = self.build_lock_path(name)
        try:
            fd = open_lock(path, self.access)
        except FileNotFoundError:
            raise NotFound(f"No environment {name!r} in the {self.scope} store") from None
        try:
            taken = self._flock_unless_built(fd, operation)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            return None
        if operation == fcntl.LOCK_EX and not _same_file(fd, path):  # deleted meanwhile
            os.close(fd)
            raise NotFound(f"No environment {name!r} in the {self.scope} store")
        return fd

    def _flock_unless_built(self, fd: int, operation: int) -> bool:
        """Take the build lock unless a build holds it. Anyone may hold it shared for a moment
        (:meth:`build_locked` asks so, e.g. for every listing of a queued build): an exclusive
        lock refused while a shared one can be had is such a look, and is tried again (for at
        most PROBE_WAIT_S); a worker handed its build a millisecond after the build was queued
        used to fail, "Another build is running"."""
        deadline = time.monotonic() + PROBE_WAIT_S
        delay = 0.001
        while True:
            try:
                self._flock(fd, operation | fcntl.LOCK_NB)
                return True
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if operation != fcntl.LOCK_EX or time.monotonic() >= deadline:
                return False
            try:
                self._flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EACCES):
                    return False  # held exclusively: a build
                raise
            fcntl.flock(fd, fcntl.LOCK_UN)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

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


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
