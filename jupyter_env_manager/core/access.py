"""Who may use what a shared store makes: the store's root directory says.

An admin shares a store with a team through its root, as for any team directory::

    mkdir /shared/envs && chgrp datasci /shared/envs && chmod 2775 /shared/envs

Everything the environment manager then makes below that root grants the group and the others
what the root grants them, whatever each user's umask:

- directories: the root's group/other bits, and its setgid bit (so the group is inherited), so
  a teammate can rebuild, revert or delete an environment someone else made;
- files: readable (and executable, where the owner's are) by whom the root lets read, never
  writable by them (metadata is replaced by rename, which needs only the directory);
- lock files: writable by whom may write in the root (NFS locks need a writable descriptor).

A root without group/other write (``0755``, an admin's store) makes a read-only store for the
others: they list it and use its kernels, and a change is refused with a clear message. The
local store keeps the user's own umask: this policy is for shared stores only.
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
        return 0o600 | (self.bits & 0o066)

    @property
    def umask(self) -> int:
        """The umask for a process that makes files in the store (a build worker)."""
        return 0o777 & ~(0o700 | self.bits)

    def apply(self, path: Path) -> None:
        """Give one path we just made the store's mode (a directory or a plain file)."""
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            os.chmod(path, self.dir_mode)
        elif stat.S_ISREG(st.st_mode):
            os.chmod(path, self.file_mode(bool(st.st_mode & 0o100)))

    def open_tree(self, top: Path) -> int:
        """Add the store's bits where a tree lacks them; returns how many paths were changed.

        For a prefix: rattler hardlinks or copies files with the package cache's modes (and
        group) and writes conda-meta records 0600, so a umask alone cannot make it usable by
        the team. Only what is missing is changed (one ``lstat`` per path; a ``chmod``, or a
        ``chown`` to a setgid root's group, only where needed).
        """
        changed = 0
        want_dir = self.bits | (stat.S_ISGID if self.setgid else 0)
        read, run = self.bits & 0o044, self.bits & 0o011
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    mode = st.st_mode
                    if stat.S_ISDIR(mode):
                        want = want_dir
                    elif stat.S_ISREG(mode):
                        want = read | (run if mode & 0o100 else 0)
                    else:
                        continue  # symlinks have no modes of their own
                    fixed = False
                    if self.setgid and st.st_gid != self.gid:
                        os.chown(path, -1, self.gid, follow_symlinks=False)
                        fixed = True
                    if mode & want != want or fixed:  # a chown may clear setgid: set it again
                        os.chmod(path, stat.S_IMODE(mode) | want)
                        fixed = True
                    changed += fixed
                except PermissionError:  # a cache file owned by someone else: leave it
                    continue
        try:
            st = os.stat(top)
            if st.st_mode & want_dir != want_dir:
                os.chmod(top, stat.S_IMODE(st.st_mode) | want_dir)
                changed += 1
        except FileNotFoundError:
            pass
        return changed


def open_lock(path: Path, access: Access | None) -> int:
    """Open (creating if needed) a lock file; read-only when we may not write it.

    A lock file someone else made in a store that is read-only for us still lets us test
    whether its lock is held (on local filesystems; NFS needs a writable descriptor).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    if access is not None:
        os.fchmod(fd, access.lock_mode)
    return fd
