"""Verify once per lock: a build whose files are those a verify of the same lock already loaded,
unchanged, does not start its python to import them again.

Verify starts the new prefix's python and imports what its kernel imports (ipykernel's closure:
~200 ms with its byte-code, ~500 ms without). What that proves depends only on the files the
python loads, and in a prefix rattler linked from the package cache those are

- hard links of the cache's files: the same inode, so the same bytes, in every prefix linked
  from it; or
- files the installer rewrote for the prefix (the prefix placeholder), made from a cache file:
  the same bytes but for the prefix's path, which the installer writes.

So after a verify that passed, the build records what it proved, beside the package cache::

    <conda package cache>/.envmgr-verified/<key>.json

keyed by the lock (each conda package's URL and sha256, the pip layer's names and versions) and
the modules imported. It lists every file under the prefix that the verifying python had loaded
(its modules, and the shared libraries mapped into it), each as

- ``["link", dev, ino, size, mtime_ns]``: a hard link; the next prefix's file must be this very
  inode, unchanged (an edit through any of its links moves its mtime);
- ``["copy", source, dev, ino, size, mtime_ns]``: made from ``source`` in the package cache;
  that source must be unchanged, and the next prefix must have the file.

A loaded file that is neither (uv copied it, something wrote it) makes no certificate: that lock
is verified at every build. A certificate that does not hold for a new prefix (a package
extracted again, a cache file edited, a pip layer copied where it was linked) is not used, and
the verify that runs then writes it again. Nothing else changes: the check for files still
naming the staging directory runs at every build. ``c.EnvManager.verify_once = False`` verifies
every build. A certificate is only ever read by builds of its package cache's owner.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .lockfile import conda_lock_entries, linked_records

VERIFIED = ".envmgr-verified"
FORMAT = 1
_NOARCH = (
    (re.compile(r"^lib/python[^/]+/site-packages/"), "site-packages/"),
    (re.compile(r"^bin/"), "python-scripts/"),
)

# Run by the verifying python after its imports: the files it loaded, to argv[1].
REPORT = """
import sys as _s, json as _j
_f = {getattr(_m, "__file__", None) for _m in list(_s.modules.values())}
_f.add(_s.executable)
try:
    with open("/proc/self/maps") as _h:
        for _l in _h:
            _p = _l.split(None, 5)
            if len(_p) == 6 and _p[5].startswith("/"):
                _f.add(_p[5].rstrip("\\n"))
except OSError:
    pass
with open(_s.argv[1], "w") as _o:
    _l = sorted(_x for _x in _f if isinstance(_x, str))
    _j.dump({"tag": _s.implementation.cache_tag, "loaded": _l}, _o)
"""


def key(records: list[Any], pip: list[dict[str, str]], modules: list[str]) -> str:
    """The certificate's name: what a build of the same lock and kernel modules shares."""
    import hashlib  # not at a worker's start (most builds verify once, if at all)

    conda = [(e["url"], e["sha256"] or e["md5"]) for e in conda_lock_entries(records)]
    layer = sorted((d["name"].lower(), d["version"]) for d in pip)
    text = json.dumps([FORMAT, sorted(modules), sorted(conda), layer])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def path_of(conda_cache: Path, digest: str) -> Path:
    return conda_cache / VERIFIED / f"{digest}.json"


def holds(certificate: Path, prefix: Path) -> dict[str, Any] | None:
    """The certificate if ``prefix`` has the files it lists, unchanged; None if it does not
    (or there is no usable certificate)."""
    try:
        with open(certificate, "rb") as f:
            data = json.load(f)
        if data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
            return None
        files: dict[str, list[Any]] = data["files"]
        for rel, how in files.items():
            if rel.startswith("/") or ".." in rel.split("/"):
                return None
            st = os.stat(prefix / rel)
            if how[0] == "link":
                if [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns] != how[1:]:
                    return None
            elif how[0] == "copy":
                if not _same(how[1], how[2:]):
                    return None
            else:
                return None
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return None
    return data


def uncompiled(prefix: Path, data: dict[str, Any]) -> list[str]:
    """The modules of the certificate that have no byte-code in ``prefix`` (those written for
    it, never shared by :mod:`.bytecode`, or whose kept byte-code is gone): a build that skips
    the imports compiles them, as the imports would have."""
    tag = data.get("tag")
    out = []
    for rel in data["files"]:
        if rel.endswith(".py"):
            head, _, name = rel.rpartition("/")
            pyc = f"{head}/__pycache__/{name[:-3]}.{tag}.pyc" if head else ""
            if not tag or not head or not os.path.exists(prefix / pyc):
                out.append(rel)
    return sorted(out)


COMPILE = "import py_compile, sys\nfor f in sys.argv[1:]: py_compile.compile(f, doraise=True)"


def certify(prefix: Path, report: dict[str, Any], relied: list[str]) -> dict[str, Any] | None:
    """What a verify of ``prefix`` proved (``report``: what its python loaded): its loaded
    files under the prefix, each as a link or as a copy of a package cache file; None if one
    is neither."""
    top = os.path.realpath(prefix) + os.sep
    files: dict[str, list[Any]] = {}
    sources: dict[str, str] | None = None
    for path in report["loaded"]:
        real = os.path.realpath(path)
        if not real.startswith(top):
            continue  # not the prefix's (the system's libc, a test channel's host python)
        rel = real[len(top) :]
        st = os.stat(real)
        if st.st_nlink > 1:
            files[rel] = ["link", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
            continue
        if sources is None:
            sources = _sources(prefix)
        source = sources.get(rel)
        if source is None:
            return None
        src = os.stat(source)
        files[rel] = ["copy", source, src.st_dev, src.st_ino, src.st_size, src.st_mtime_ns]
    return {"format": FORMAT, "tag": report["tag"], "packages": relied, "files": files}


def write(certificate: Path, data: dict[str, Any]) -> None:
    """Write it whole (a temporary file renamed over it): a reader sees the old one or this."""
    certificate.parent.mkdir(mode=0o755, exist_ok=True)
    tmp = certificate.parent / f".tmp-{os.getpid()}-{certificate.name}"
    try:
        # never writable by others, whatever the umask (the cache may be in the home)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, certificate)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def keep(certificate: Path, prefix: Path, report: Path, records: list[Any]) -> str | None:
    """Keep what the verify of ``prefix`` proved (``report``: what its python loaded) for the
    next build of the same lock; best effort: what to log when nothing was kept, else None."""
    try:
        loaded = json.loads(report.read_text())
        done = certify(prefix, loaded, packages(records))
        if done is None:
            return "verify: python loaded a file not made from the package cache"
        write(certificate, done)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"warning: what verify checked was not kept: {err}"
    return None


def _sources(prefix: Path) -> dict[str, str]:
    """Each prefix file rattler made from the package cache: its path there (conda-meta)."""
    out: dict[str, str] = {}
    for record, entry, paths in linked_records(prefix):
        kind = record.get("noarch")
        noarch = kind == "python" or (isinstance(kind, dict) and kind.get("type") == "python")
        for item in paths:
            rel = item.get("_path", "")
            origin = rel
            if noarch:
                for pattern, replacement in _NOARCH:
                    if pattern.search(rel):
                        origin = pattern.sub(replacement, rel, count=1)
                        break
            if os.path.isfile(os.path.join(entry, origin)):
                out[rel] = os.path.join(entry, origin)
    return out


def packages(records: list[Any]) -> list[str]:
    """The package cache entries (``name-version-build``) a certificate relies on."""
    return sorted(f"{e['name']}-{e['version']}-{e['build']}" for e in conda_lock_entries(records))


def unused(conda_cache: Path, used: set[str]) -> list[Path]:
    """Certificates of locks with a package that no environment links any more (``clean``
    removes it from the cache: a prefix linked again would not hold anyway)."""
    out: list[Path] = []
    try:
        entries = list(os.scandir(conda_cache / VERIFIED))
    except OSError:
        return out
    for entry in entries:
        try:
            with open(entry.path, "rb") as f:
                relied = json.load(f)["packages"]
            alive = all(p in used for p in relied) and not entry.name.startswith(".tmp-")
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        if not alive:
            out.append(Path(entry.path))
    return sorted(out)


def _same(path: str, identity: list[Any]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns] == identity
