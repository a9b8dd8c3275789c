"""The environments list (``GET environments``, ``jupyter envmgr list``) at thousands of
environments: per-environment views and JSON fragments, cached by stat fingerprints and kept
across restarts.

A listing is the hottest path of the product: every panel refresh lists both stores. Reading an
environment's records (three JSON files, a ``conda-meta`` scan, its versions and pins) costs
~0.3 ms; a ``stat`` costs ~2 µs. So each environment keeps, in memory:

- its *fingerprint*: the mtimes of the directories its view is read from (its metadata
  directory, its builds directory and latest build's directory, its ``conda-meta``, its version
  directories' parent, its pins). Metadata is always replaced by ``rename`` and version numbers
  are claimed by ``mkdir``, so whatever another process (the CLI, a teammate's server) changes
  moves one of these mtimes. A fingerprint younger than the clock's granularity is not trusted
  (the view is read again next time), nor is a building environment's (its status is live).
- its *base view* (what the records say) and the *inputs* of what is per user and per listing:
  whether its kernel is in this user's launcher, its disk use, why this user may not change
  its store or copy to the shared store, whether they may approve, its publish request;
- its *fragment*: the JSON text of the full view, reused while fingerprint and inputs are the
  same. A listing is then one ``stat`` pass and a ``join`` of cached strings.

The cache is written (off the request path) to the user's Jupyter data directory
(``env_manager/listing-<digest>.jsonl``, mode 0600), so the first listing after a server
start checks fingerprints instead of reading every record again.

The list sends what the panel shows: a build's ``phases`` are left out of ``latest_build``
(``GET environments/{scope}/{name}`` and ``GET .../builds/{version}`` carry them).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import kernels
from .actions import NO_SHARED, env_actions
from .diskuse import env_dirs
from .errors import NotFound
from .store import Store

if TYPE_CHECKING:
    from .publishing import DecorateContext
    from .service import EnvService

FORMAT = 1
FRESH_NS = 2_000_000_000  # a change this recent could hide a second one in the same mtime tick
PINS_RECHECK_S = 3600.0  # pins expire with time, not with an mtime: look again this often
SAVE_EVERY_S = 30.0  # the cache only matters at the next start: a few late changes cost little
# Keys a view gets per listing (from its inputs), on top of what its records say.
DERIVED = ("disk_bytes", "actions", "lifecycle")


@dataclass
class Entry:
    """One environment's cached view, the inputs of its fragment, and the fragment."""

    name: str
    paths: tuple[str, ...]  # what the fingerprint stats
    stamps: tuple[int, ...]  # their mtimes when the base view was read
    base: dict[str, Any] | None  # None: loaded from disk, parsed from the fragment when needed
    dirs: tuple[str, ...]  # its version directories (the key of its disk use)
    parents: tuple[int, ...] = ()  # the store's stamps of the parents of paths not made yet
    inputs: tuple[Any, ...] = ()
    fragment: str = ""
    expires: float = 0.0  # 0: never (a time.time() after which the base view is read again)


def _stamps(paths: tuple[str, ...]) -> tuple[int, ...]:
    out = []
    for path in paths:
        try:
            out.append(os.stat(path).st_mtime_ns)
        except OSError:
            out.append(0)
    return tuple(out)


def _fresh(stamps: tuple[int, ...]) -> bool:
    return time.time_ns() - max(stamps) < FRESH_NS


class Listing:
    """``service.listing``: the views of every environment, as dicts or as one JSON body."""

    def __init__(self, service: EnvService, cache_file: Path | None = None) -> None:
        self.svc = service
        self.cache_file = cache_file
        self._entries: dict[tuple[str, str], Entry] = {}
        self._lock = threading.Lock()  # one listing computes at a time; the others reuse it
        self._loaded = cache_file is None
        self._dirty = False
        self._saved_at = 0.0
        self._saving = threading.Lock()
        self._gz: tuple[str, bytes] | None = None
        self._kernels: tuple[tuple[int, ...], set[str]] | None = None
        self._timer: threading.Timer | None = None
        self._busy = 0  # listings under way
        self._busy_lock = threading.Lock()

    # -- what the doors call -------------------------------------------------------------------

    def views(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every environment's view (a copy each: callers may change them)."""
        return [json.loads(e.fragment) for e in self._list(scope)]

    def body(self, scope: str | None = None) -> str:
        """The JSON body of ``GET environments``: ``{"environments": [...]}``."""
        return '{"environments": [' + ", ".join(e.fragment for e in self._list(scope)) + "]}"

    def gzipped(self, body: str) -> bytes:
        """``body`` compressed (the last one is kept: an unchanged list is not compressed
        again)."""
        last = self._gz
        if last is not None and last[0] == body:
            return last[1]
        # Level 3: about twice as fast as 6 on a 6 MB list, about 10% larger.
        data = gzip.compress(body.encode(), compresslevel=3, mtime=0)
        self._gz = (body, data)
        return data

    def prime(self) -> None:
        """Make the list (and its gzip) once, before a server's other start-up work: its first
        request then only checks fingerprints, instead of sharing the interpreter with the
        recovery, the kernel sync and the watcher's first scan."""
        self.gzipped(self.body())

    # -- the listing -----------------------------------------------------------------------------

    def wait_idle(self, max_s: float = 0.5) -> None:
        """Background passes (disk use) call this between environments: while a listing runs
        they wait, so it does not share the interpreter with them (at most ``max_s``)."""
        deadline = time.monotonic() + max_s
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.005)

    def _list(self, scope: str | None) -> list[Entry]:
        with self._busy_lock:
            self._busy += 1
        try:
            return self._list_now(scope)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _list_now(self, scope: str | None) -> list[Entry]:
        svc = self.svc
        with self._lock:
            self._load()
            installed = self._installed()
            shared = svc.shared
            shared_denial = NO_SHARED if shared is None else shared.write_denial()
            context = svc.publishing.context()
            out: list[Entry] = []
            seen: set[tuple[str, str]] = set()
            for store in svc.stores(scope):
                denial = store.write_denial()  # per store: its environments share its modes
                common = (denial, shared_denial, *context.approve)
                managed = store.managed_names()
                parents = _stamps((str(store.meta / "prefixes"), str(store.meta / "pins")))
                for name in managed:
                    entry = self._managed(store, name, parents)
                    if entry is None:
                        continue  # deleted while we listed
                    seen.add((store.scope, name))
                    request = context.requests.get(name) if store.scope == "local" else None
                    out.append(self._finish(store, entry, installed, common, context, request))
                for name in store.unmanaged_names(set(managed)):
                    entry = self._unmanaged(store, name)
                    seen.add((store.scope, name))
                    out.append(self._finish(store, entry, installed, common, context, None))
            scopes = {s.scope for s in svc.stores(scope)}
            for key in [k for k in self._entries if k[0] in scopes and k not in seen]:
                del self._entries[key]  # deleted environments
                self._dirty = True
        self._save_later()
        return out

    def _managed(self, store: Store, name: str, parents: tuple[int, ...]) -> Entry | None:
        key = (store.scope, name)
        entry = self._entries.get(key)
        if (
            entry is not None
            and (not entry.expires or entry.expires > time.time())
            and (not entry.parents or entry.parents == parents)
            and _stamps(entry.paths) == entry.stamps
        ):
            return entry
        dirs: list[str] = []
        try:
            base = self.svc.views.base_view(store, name, dirs)
        except NotFound:
            self._entries.pop(key, None)
            return None
        env_dir, records, versions, pins = self.svc.views.listing_paths(store, name)
        paths = [env_dir, records]
        relies = False  # on the parents: a directory that does not exist yet appears in them
        for path in (versions, pins):
            if os.path.isdir(path):
                paths.append(path)
            else:
                relies = True
        stamps = _stamps(tuple(paths))
        if base["latest_build"] is not None:
            base["latest_build"].pop("phases", None)  # in the environment's own GET
        entry = Entry(name, tuple(paths), stamps, base, tuple(dirs))
        entry.parents = parents if relies else ()
        if base["pinned"]:
            entry.expires = time.time() + PINS_RECHECK_S
        if base["status"] == "building" or _fresh(stamps) or (relies and _fresh(parents)):
            entry.stamps = ()  # never equal: read again next time
        self._entries[key] = entry
        self._dirty = self._dirty or bool(entry.stamps)
        return entry

    def _installed(self) -> set[str]:
        """The names of this user's kernelspecs, read again when their directory changed."""
        top = str(self.svc.kernels.dir)
        stamp = _stamps((top,))
        cached = self._kernels
        if cached is not None and cached[0] == stamp:
            return cached[1]
        names = self.svc.kernels.installed()
        self._kernels = None if _fresh(stamp) else (stamp, names)
        return names

    def _unmanaged(self, store: Store, name: str) -> Entry:
        key = (store.scope, name)
        entry = self._entries.get(key)
        if entry is not None:
            stamps = _stamps(entry.paths)
            if stamps == entry.stamps:
                return entry
        paths = (os.path.join(store.prefix(name), "conda-meta"),)
        stamps = _stamps(paths)
        base = self.svc.views.unmanaged(store, name, set())
        entry = Entry(name, paths, stamps, base, _dirs(store, name))
        if _fresh(stamps):
            entry.stamps = ()
        self._entries[key] = entry
        self._dirty = self._dirty or bool(entry.stamps)
        return entry

    def _finish(
        self,
        store: Store,
        entry: Entry,
        installed: set[str],
        common: tuple[Any, ...],
        context: DecorateContext,
        request: dict[str, Any] | None,
    ) -> Entry:
        """Make the entry's fragment if anything it depends on changed."""
        name = entry.name
        kname = kernels.kernel_name(store.scope, name)
        disk = self.svc.disk.peek(store.scope, name, entry.dirs)
        inputs = (
            kname in installed,
            disk,
            *common,
            None if request is None else json.dumps(request, sort_keys=True),
        )
        if inputs == entry.inputs and entry.fragment:
            return entry
        if entry.base is None:
            entry.base = _base_of(json.loads(entry.fragment))
        view = dict(entry.base)
        view["disk_bytes"] = disk
        if view["managed"] and view["version"]:
            view["kernel"] = {
                "name": kname,
                "display_name": view["display_name"]
                + (" (shared)" if store.scope == "shared" else ""),
                "active": kname in installed,
            }
        elif not view["managed"]:
            view["kernel"] = {"name": kname, "display_name": name, "active": kname in installed}
        view["actions"] = env_actions(view, common[0], common[1])
        self.svc.publishing.decorate(view, context)
        entry.inputs = inputs
        entry.fragment = json.dumps(view)
        self._dirty = self._dirty or bool(entry.stamps)
        return entry

    # -- kept across restarts ------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        from .. import __version__

        svc = self.svc
        return {
            "format": FORMAT,
            "version": __version__,
            "local": str(svc.local.root),
            "shared": str(svc.shared.root) if svc.shared else None,
            "pin_keep_s": svc.views.pin_keep_s,
            "uid": os.getuid(),
        }

    def load(self) -> None:
        """Read the cache a previous process wrote, once (the first listing does; the disk use
        pass too, which takes the figures it holds)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        """A line per environment, its fragment kept as text: parsed only if its inputs
        changed."""
        if self._loaded or self.cache_file is None:
            return
        self._loaded = True
        try:
            with open(self.cache_file) as f:
                if json.loads(f.readline()) != self._header():
                    return
                for line in f:
                    meta, fragment = line.rstrip("\n").split("\t", 1)
                    scope, name, paths, stamps, dirs, inputs, expires, parents = json.loads(meta)
                    self._entries[(scope, name)] = Entry(
                        name,
                        tuple(paths),
                        tuple(stamps),
                        None,
                        tuple(dirs),
                        tuple(parents),
                        tuple(inputs),
                        fragment,
                        expires,
                    )
        except (OSError, ValueError, TypeError):
            self._entries.clear()  # no cache, or not ours: read the records
            return
        for (scope, name), entry in self._entries.items():
            if entry.inputs and entry.inputs[1] is not None:
                self.svc.disk.seed(scope, name, entry.dirs, entry.inputs[1])

    def _save_later(self) -> None:
        """Save in a thread of its own, at most every SAVE_EVERY_S (the last change too)."""
        if self.cache_file is None or not self._dirty or self._timer is not None:
            return
        wait = max(0.0, SAVE_EVERY_S - (time.monotonic() - self._saved_at))
        self._timer = threading.Timer(wait, self._timed_save)
        self._timer.daemon = True
        self._timer.start()

    def _timed_save(self) -> None:
        self._timer = None
        self.save()

    def save(self) -> None:
        """Write the cache (atomically, for this user only)."""
        if self.cache_file is None:
            return
        self._saving.acquire()  # one writer at a time (a timed save may be under way)
        tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}.tmp")
        try:
            with self._lock:
                self._dirty = False
                self._saved_at = time.monotonic()
                rows = [
                    (key, e.paths, e.stamps, e.dirs, e.inputs, e.fragment, e.expires, e.parents)
                    for key, e in self._entries.items()
                    if e.fragment and e.stamps
                ]
            lines = [json.dumps(self._header())]
            for key, paths, stamps, dirs, inputs, fragment, expires, parents in rows:
                meta = json.dumps([*key, paths, stamps, dirs, inputs, expires, parents])
                lines.append(f"{meta}\t{fragment}")
            self.cache_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w") as f:
                f.write("\n".join(lines) + "\n")
            os.replace(tmp, self.cache_file)
            for stale in self.cache_file.parent.glob(f".{self.cache_file.name}.*.tmp"):
                with contextlib.suppress(OSError):  # a process that exited while saving
                    if time.time() - stale.stat().st_mtime > 600:
                        stale.unlink()
        except OSError as err:
            self.svc.log.debug("jupyter_env_manager: listing cache not saved: %s", err)
            with contextlib.suppress(OSError):
                tmp.unlink()
        finally:
            self._saving.release()


def _dirs(store: Store, name: str) -> tuple[str, ...]:
    """The directories an environment's disk use is computed from (its key)."""
    return tuple(str(p) for p in env_dirs(store, name))


def _base_of(view: dict[str, Any]) -> dict[str, Any]:
    """The base view inside a full one (what its records say, without the per-listing keys)."""
    base = {k: v for k, v in view.items() if k not in DERIVED}
    if base.get("managed", True):
        base["kernel"] = None
    return base


def cache_path(local_root: str | Path, shared_root: str | Path | None) -> Path:
    """Where this user's listing cache for these stores lives (the Jupyter data directory)."""
    from jupyter_core.paths import jupyter_data_dir

    digest = hashlib.sha256(f"{local_root}\0{shared_root or ''}".encode()).hexdigest()[:16]
    return Path(jupyter_data_dir()) / "env_manager" / f"listing-{digest}.jsonl"
