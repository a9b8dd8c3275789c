"""Which package cache a build links from: the user's, or one on the shared store's filesystem.

rattler installs a package by hard-linking its files from the package cache
(c.EnvManager.pkgs_dir, in the user's home) into the prefix. A hard link cannot cross
filesystems, so a shared store on another filesystem (NFS, as it usually is) would get a copy
of every file of every package. A build into such a store links from a package cache on the
store's own filesystem instead::

    <shared_root>/.envmgr/pkgs/                    the store's mode, plus the sticky bit
    <shared_root>/.envmgr/pkgs/<user>/conda/       this user's conda package cache
    <shared_root>/.envmgr/pkgs/<user>/uv/          this user's uv cache (the pip layer), 0700

One cache per user, not one per team: files in a package cache are hard-linked into every
prefix built from it, so they are never writable by anyone but their owner (see
:mod:`.access`), and with ``fs.protected_hardlinks = 1`` (the Linux default) the kernel lets a
user hard-link only files they own or may write. A teammate's cached files could not be
linked (rattler then copies each one, silently), and rattler's per-package lock files of a
teammate's entries could not be opened for writing. The sticky ``pkgs/`` directory lets every
member of the store make their own directory and no one remove or rename another's; a user's
directory is writable by its owner alone, so nobody can swap a package under someone else's
next build.

The shared cache is not used, and the build falls back to the local one with a warning in its
log (and in ``info``, for an admin), when it cannot be made or written by this user, when it
is not on the filesystem of the store's staging directory, or when a hard link from it fails.
A shared store on the same filesystem as the local cache links from the local cache as before
(no second download). Repodata stays in the local cache (``<pkgs_dir>/cache/repodata``): it is
read, never linked.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import StoreLayout

PKGS = "pkgs"


@dataclass
class CacheChoice:
    """The package cache a build links from, the uv cache it uses, and why."""

    conda: Path
    uv: Path | None  # None: uv's own default cache
    note: str  # one line for the build log
    copies: bool = False  # the build copies every file: the note is a warning

    def public(self) -> dict[str, Any]:
        return {"path": str(self.conda), "links": not self.copies, "note": self.note}


def user_dir_name() -> str:
    """This user's directory in a shared store's ``pkgs/``: the login name of the effective
    uid (never an environment variable), or the uid where the name is not a plain one."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}", name) else str(uid)


def user_cache_dir(store: StoreLayout) -> Path:
    """This user's directory of caches in ``store`` (made or not)."""
    return store.meta / PKGS / user_dir_name()


def shared_conda_cache(store: StoreLayout) -> Path:
    return user_cache_dir(store) / "conda"


def _device(path: Path) -> int | None:
    """The filesystem of ``path``, or of its nearest existing parent."""
    for p in (path, *path.parents):
        try:
            return os.stat(p).st_dev
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def _local(local: Path, copies: bool, why: str) -> CacheChoice:
    if copies:
        note = (
            f"warning: the shared store falls back to copying every package file from the "
            f"local package cache {local}: {why}"
        )
    else:
        note = f"package cache: {local} ({why})"
    return CacheChoice(local, None, note, copies)


def choose(store: StoreLayout, local_pkgs: str | Path, make: bool = True) -> CacheChoice:
    """The cache a build into ``store`` links from.

    ``make``: a build worker (it makes the directories and probes a hard link); without it,
    a read-only look for ``info`` (nothing is made; a cache not made yet is judged by the
    filesystem and the permissions of the directory it would be made in).
    """
    local = Path(local_pkgs)
    if store.scope != "shared" or store.access is None:
        return CacheChoice(local, None, f"package cache: {local}")
    staging = store.meta / "staging"
    target_dev = _device(staging)
    if target_dev is not None and _device(local) == target_dev:
        return _local(local, False, "on the shared store's filesystem: files are hard-linked")
    cache = shared_conda_cache(store)
    try:
        if make:
            made = _make(store)
            _probe_link(made, staging)
        else:
            _check(store)
    except _Unusable as err:
        return _local(local, True, str(err))
    note = f"package cache: {cache} (on the shared store's filesystem: files are hard-linked)"
    return CacheChoice(cache, cache.parent / "uv", note)


class _Unusable(Exception):
    pass


def _make(store: StoreLayout) -> Path:
    """Make ``pkgs/<user>/{conda,uv}`` as the module docstring says; returns the conda one."""
    access = store.access
    assert access is not None
    top = store.meta / PKGS
    mine = user_cache_dir(store)
    try:
        if not top.is_dir():
            store._mkdir(top, exist_ok=True)
            st = os.stat(top)
            if st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX:
                os.chmod(top, stat.S_IMODE(st.st_mode) | stat.S_ISVTX)
        for path, mode in (
            (mine, access.dir_mode & ~0o022),  # the team reads, only its owner writes
            (mine / "conda", access.dir_mode & ~0o022),
            (mine / "uv", 0o700),  # uv makes its cache's lock files 0666: nobody else reaches
        ):
            try:
                path.mkdir()
                os.chmod(path, mode)
            except FileExistsError:
                pass
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                raise _Unusable(f"{path} is not a directory of yours")
            extra = stat.S_IMODE(st.st_mode) & 0o077 & ~mode  # made by an older version?
            if extra:
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~extra)
    except PermissionError:
        raise _Unusable(
            f"{top} is not writable for you (the shared store's package cache; its root's "
            "group needs write permission, e.g. chmod 2775)"
        ) from None
    except OSError as err:
        raise _Unusable(f"{mine} could not be made: {err.strerror or err}") from None
    return mine / "conda"


def _probe_link(cache: Path, staging: Path) -> None:
    """Hard-link a file of ours from the cache into the staging directory, as rattler will."""
    if os.stat(cache).st_dev != _device(staging):
        raise _Unusable(f"{cache} is not on the filesystem of the store's staging directory")
    probe = cache / f".link-probe.{os.getpid()}"
    target = staging / f".link-probe.{os.getpid()}"
    try:
        staging.mkdir(exist_ok=True)
        probe.write_bytes(b"")
        os.link(probe, target)
    except OSError as err:
        raise _Unusable(
            f"a hard link from {cache} to {staging} failed: {err.strerror or err}"
        ) from None
    finally:
        for path in (target, probe):
            try:
                path.unlink()
            except OSError:
                pass


def _check(store: StoreLayout) -> None:
    """Without making anything: would this user's build use the shared cache?"""
    mine = user_cache_dir(store)
    for path in (mine / "conda", mine, store.meta / PKGS, store.meta, store.root):
        if path.exists():
            break
    else:
        raise _Unusable(f"{store.root} does not exist")
    if path in (mine / "conda", mine):
        if os.stat(path).st_uid != os.geteuid():
            raise _Unusable(f"{path} is not a directory of yours")
        if not os.access(path, os.W_OK | os.X_OK):
            raise _Unusable(f"{path} is not writable for you")
    elif not os.access(path, os.W_OK | os.X_OK):
        raise _Unusable(
            f"{path} is not writable for you (the shared store's package cache; its root's "
            "group needs write permission, e.g. chmod 2775)"
        )
    if _device(path) != _device(store.meta / "staging"):
        raise _Unusable(f"{path} is not on the filesystem of the store's staging directory")


def with_offline_packages(choice: CacheChoice, local: Path, missing: list[str]) -> CacheChoice:
    """Offline, with packages only the local cache has: this build links from the local one."""
    note = (
        f"warning: offline, and {len(missing)} packages are in the local package cache only "
        f"({', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}): the shared store "
        f"falls back to copying every package file from {local}"
    )
    return CacheChoice(local, None, note, True)


def package_caches(store: StoreLayout | None, local_pkgs: str | Path) -> list[Path]:
    """The package caches a build into ``store`` may have linked from: the local one first,
    then this user's on the shared store's filesystem (where it exists)."""
    caches = [Path(local_pkgs)]
    if store is not None and store.scope == "shared":
        shared = shared_conda_cache(store)
        if shared.is_dir():
            caches.append(shared)
    return caches
