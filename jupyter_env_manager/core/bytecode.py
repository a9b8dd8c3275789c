"""Byte-code a build does not compile again: the ``.pyc`` files of package files, kept beside
the package cache and linked into every prefix that links the same packages.

conda-forge's ``noarch: python`` packages ship no byte-code (conda compiles it at install time;
rattler does not), so Python compiles each module the first time it is imported in a prefix:
every version of every environment paid for it again, in its build's verify (which imports what
ipykernel's kernel imports as it starts: ~200 modules of its noarch closure, ~0.3-0.6 s) or at
kernel starts (every start, for a kernel that may not write ``__pycache__``). The
``.py`` files of a prefix are hard links into the package cache, the same inode (so the same
mtime and size) in every prefix built from it, and a ``.pyc`` Python writes for one is valid
for all of them::

    <package cache>/.envmgr-bytecode/<name-version-build>/<path in the prefix>/__pycache__/*.pyc

After verify, a build keeps there the ``.pyc`` files it compiled for such package files
(:func:`keep`); before verify, a build links into its prefix those its packages have
(:func:`seed`). Nothing is trusted blindly: Python checks every ``.pyc`` against its ``.py``
(the source mtime and size in its header) and compiles a new one, written beside, never over
the linked file, when they differ (a package extracted again, a file copied instead of linked).
A file the installer rewrote for its prefix (one with the prefix placeholder) or that is not a
hard link of the package's is never shared. This is an optimisation only: any failure (a cache
that is read-only, on another filesystem) is one line in the build log.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .lockfile import linked_records

BYTECODE = ".envmgr-bytecode"
_NOARCH_SITE = re.compile(r"^lib/python[^/]+/site-packages/")


@dataclass
class Package:
    """A package of a prefix, as far as its byte-code is concerned."""

    entry: Path  # its package cache entry (extracted), which the prefix's files link to
    noarch_python: bool
    dirs: dict[str, set[str]] = field(default_factory=dict)  # prefix dir -> .py stems

    @property
    def kept(self) -> Path:
        return self.entry.parent / BYTECODE / self.entry.name

    def same_file(self, head: str, stem: str, st: os.stat_result) -> bool:
        """Is the prefix's ``head/stem.py`` (``st``) the package cache's own file?"""
        path = f"{head}/{stem}.py" if head else f"{stem}.py"
        if self.noarch_python:
            path = _NOARCH_SITE.sub("site-packages/", path)
        try:
            theirs = os.stat(self.entry / path)
        except OSError:
            return False
        return (theirs.st_dev, theirs.st_ino) == (st.st_dev, st.st_ino)


def packages(prefix: Path) -> list[Package]:
    """The packages of ``prefix`` with ``.py`` files that may share byte-code: linked from the
    package cache as they are (no prefix placeholder rewritten into them), in a package that
    ships no byte-code of its own."""
    found: list[Package] = []
    for _record, entry, paths in linked_records(prefix):
        package = Package(Path(entry), False)
        for item in paths:
            path = item.get("_path", "")
            if path.endswith(".pyc"):  # it ships its byte-code (conda-build compiled it)
                package.dirs.clear()
                break
            if (
                path.endswith(".py")
                and item.get("path_type", "hardlink") == "hardlink"
                and not item.get("prefix_placeholder")
            ):
                head, _, name = path.rpartition("/")
                package.dirs.setdefault(head, set()).add(name[:-3])
                package.noarch_python |= _NOARCH_SITE.search(path) is not None
        if package.dirs:
            found.append(package)
    return found


def seed(prefix: Path, found: list[Package]) -> int:
    """Link into ``prefix`` the kept ``.pyc`` files of its packages, each only where the
    prefix's ``.py`` is the package cache's own file; returns how many."""
    linked = 0
    for package in found:
        top = package.kept
        if not top.is_dir():
            continue
        for head, stems in package.dirs.items():
            try:
                names = [n for n in os.listdir(top / head / "__pycache__") if _stem(n) in stems]
            except OSError:
                continue
            target = prefix / head / "__pycache__"
            for name in names:
                stem = _stem(name)
                try:
                    st = os.lstat(prefix / head / f"{stem}.py")
                    if not package.same_file(head, stem, st):
                        continue
                    target.mkdir(exist_ok=True)
                    os.link(top / head / "__pycache__" / name, target / name)
                except OSError:  # there already, or not linkable: Python compiles it
                    continue
                linked += 1
    return linked


def keep(prefix: Path, found: list[Package]) -> int:
    """Keep beside the package cache the ``.pyc`` files this build compiled for its packages'
    own files (not those linked from there already); returns how many were added."""
    added = 0
    for package in found:
        for head, stems in package.dirs.items():
            compiled = prefix / head / "__pycache__"
            try:
                names = [n for n in os.listdir(compiled) if _stem(n) in stems]
            except OSError:
                continue
            for name in names:
                path, stem = compiled / name, _stem(name)
                try:
                    st = os.lstat(path)
                    source = os.lstat(prefix / head / f"{stem}.py")
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    continue  # linked from there already, or not a plain file
                if not package.same_file(head, stem, source):
                    continue  # a copy, or a file the pip layer put there
                target_dir = package.kept / head / "__pycache__"
                os.makedirs(target_dir, mode=0o755, exist_ok=True)  # never group-writable
                temporary = target_dir / f".{name}.{os.getpid()}"
                temporary.unlink(missing_ok=True)
                os.link(path, temporary)
                os.replace(temporary, target_dir / name)  # another build's, if any, goes
                added += 1
    return added


def unused(conda_cache: Path, used: set[str]) -> list[Path]:
    """The byte-code kept for packages (cache entries) that no environment links any more."""
    try:
        with os.scandir(conda_cache / BYTECODE) as entries:
            return sorted(
                Path(e.path)
                for e in entries
                if e.name not in used and e.is_dir(follow_symlinks=False)
            )
    except OSError:
        return []


def _stem(pyc: str) -> str:
    """``mod`` of ``mod.cpython-311.pyc`` (or ``mod.cpython-311.opt-1.pyc``)."""
    return pyc.split(".", 1)[0] if pyc.endswith(".pyc") else ""
