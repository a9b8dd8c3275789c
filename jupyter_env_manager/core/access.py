"""File modes: what a shared store grants (its root says), and what the user's home keeps.

An admin shares a store with a team through its root, as for any team directory::

    mkdir /shared/envs && chgrp datasci /shared/envs && chmod 2775 /shared/envs

Everything the environment manager then makes below that root grants the group and the others
what the root grants them, whatever each user's umask:

- directories: the root's group/other bits, and its setgid bit (so the group is inherited), so
  a teammate can rebuild, revert or delete an environment someone else made;
- files: readable (and executable, where the owner's are) by whom the root lets read, never
  writable by anyone but their owner, whatever the root (metadata is replaced by rename, which
  needs only the directory);
- lock files: writable by the group when the root's group may write, never by others (someone
  outside the group gets a read-only descriptor, enough for ``flock`` on a local filesystem).

A root without group/other write (``0755``, an admin's store) makes a read-only store for the
others: they list it and use its kernels, and a change is refused with a clear message. The
local store keeps the user's own umask: this policy is for shared stores only.

Files in the user's home (kernelspecs, ``~/.conda/environments.txt``, the local store's
``kernels.json``) follow the user's own umask and are never writable by anyone else, even in a
build worker that switched its umask for a shared store (:func:`enter_store` remembers the
user's; :func:`home_mkdir` and :func:`home_mode` give home paths their modes explicitly).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

SHARED_BITS = 0o077


@dataclass(frozen=True)
class Access:
    """The permissions a shared store grants, read from its root."""

    bits: int  # the root's group/other permission bits (0o075 for a 2775 root)
    setgid: bool
    gid: int  # the root's group: a setgid root's files belong to it

    @classmethod
    def of(cls, root: Path) -> Access:
        st = os.stat(root)
        return cls(st.st_mode & SHARED_BITS, bool(st.st_mode & stat.S_ISGID), st.st_gid)

    @property
    def dir_mode(self) -> int:
        return 0o700 | self.bits | (stat.S_ISGID if self.setgid else 0)

    def file_mode(self, executable: bool = False) -> int:
        mode = 0o600 | (self.bits & 0o044)
        if executable:
            mode |= 0o100 | (self.bits & 0o011)
        return mode

    @property
    def lock_mode(self) -> int:
        """Group read/write as the root grants them; others read at most (never write)."""
        return 0o600 | (self.bits & 0o064)

    @property
    def umask(self) -> int:
        """The umask for a process that makes files in the store (a build worker).

        It never lets a file be written by the group or others; directories that rattler, uv or
        python make get their group write from :meth:`open_tree` or :meth:`apply`.
        """
        return 0o777 & ~(0o700 | (self.bits & 0o055))

    def apply(self, path: Path) -> None:
        """Give one path we just made the store's mode (a directory or a plain file)."""
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            os.chmod(path, self.dir_mode)
        elif stat.S_ISREG(st.st_mode):
            os.chmod(path, self.file_mode(bool(st.st_mode & 0o100)))

    def open_tree(self, top: Path) -> int:
        """Give a tree's directories exactly the store's mode, add the store's read bits to its
        files and take away their group/other write; returns how many paths were changed.

        For a prefix: rattler hardlinks or copies files with the package cache's modes (and
        group) and writes conda-meta records 0600, so a umask alone cannot make it usable by
        the team. Only what is missing is changed (one ``lstat`` per path; a ``chmod``, or a
        ``chown`` to a setgid root's group, only where needed).
        """
        changed = 0
        read, run = self.bits & 0o044, self.bits & 0o011
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    mode = st.st_mode
                    drop = 0
                    if stat.S_ISDIR(mode):  # exactly the store's mode
                        want, drop = self.dir_mode, 0o777 & ~self.dir_mode
                    elif stat.S_ISREG(mode):
                        want = read | (run if mode & 0o100 else 0)
                        drop = 0o022  # never writable but by the owner (uv makes its lock 0666)
                    else:
                        continue  # symlinks have no modes of their own
                    fixed = False
                    if self.setgid and st.st_gid != self.gid:
                        os.chown(path, -1, self.gid, follow_symlinks=False)
                        fixed = True
                    if mode & want != want or mode & drop or fixed:  # a chown may clear setgid
                        os.chmod(path, (stat.S_IMODE(mode) | want) & ~drop)
                        fixed = True
                    changed += fixed
                except PermissionError:  # a cache file owned by someone else: leave it
                    continue
        try:
            st = os.stat(top)
            if stat.S_IMODE(st.st_mode) != self.dir_mode:
                os.chmod(top, self.dir_mode)
                changed += 1
        except FileNotFoundError:
            pass
        return changed


def restrict_tree(top: Path, mask: int) -> int:
    """Take away from the files below ``top`` the write bits ``mask`` forbids; returns how many
    files were changed.

    For a prefix of the local store: tools that ignore the umask (uv makes the environment's
    ``.lock`` 0666) are brought back to the user's. Only files we own are changed.
    """
    changed, drop = 0, mask & 0o022
    for dirpath, _dirnames, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and st.st_mode & drop and st.st_uid == os.geteuid():
                    os.chmod(path, stat.S_IMODE(st.st_mode) & ~drop)
                    changed += 1
            except OSError:
                continue
    return changed


def open_lock(path: Path, access: Access | None) -> int:
    """Open (creating if needed) a lock file; read-only when we may not write it.

    A lock file someone else made in a store that is read-only for us still lets us test
    whether its lock is held (on local filesystems; NFS needs a writable descriptor). Created
    owner-only, then given the store's lock mode (the local store: the umask, never o+w).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644 if access is None else 0o600)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    if access is not None:
        os.fchmod(fd, access.lock_mode)
    return fd


# -- the user's home -------------------------------------------------------------------------

_user_umask: int | None = None


def enter_store(access: Access) -> None:
    """Switch this process (a build worker) to a shared store's umask, remembering the user's.

    rattler, uv and python then make the store's files with it; every write into the user's
    home keeps using the user's own umask through :func:`home_mode` / :func:`home_mkdir`.
    """
    global _user_umask
    mask = os.umask(access.umask)
    if _user_umask is None:
        _user_umask = mask


def user_umask() -> int:
    """The umask this process was started with: the user's (see :func:`enter_store`)."""
    if _user_umask is not None:
        return _user_umask
    try:  # Linux >= 4.7: read it without changing it (os.umask is racy with threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def home_mode(directory: bool = False, executable: bool = False) -> int:
    """The mode of a path we make in the user's home: the user's umask, and never writable by
    the group or others whatever that umask is."""
    base = 0o755 if directory or executable else 0o644
    return base & ~user_umask()


def home_mkdir(path: Path, top: Path | None = None) -> Path:
    """Make directory ``path`` and its missing parents with :func:`home_mode`.

    Existing directories from ``path`` up to ``top`` (and any below the home) that we own lose
    the group/other write bits the user's umask forbids: an older version made kernelspec
    directories 0777 in shared-store builds. Anything owned by someone else is left alone.
    """
    home = Path.home()
    chain = [path, *path.parents]
    missing = []
    for parent in chain:
        if parent.is_dir():
            break
        missing.append(parent)
    forbidden = user_umask() & 0o022
    for parent in chain[len(missing) :]:
        if not ((top is not None and top in (parent, *parent.parents)) or home in parent.parents):
            break
        _drop_write(parent, forbidden)
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        os.chmod(directory, home_mode(directory=True))
    return path


def _drop_write(path: Path, bits: int) -> None:
    try:
        st = os.lstat(path)
        if st.st_uid == os.geteuid() and st.st_mode & bits and stat.S_ISDIR(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~bits)
    except OSError:
        pass
