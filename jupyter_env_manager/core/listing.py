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
  (the view is read again next time), nor is a building environment's (its status is live;
  read again to the same view, it keeps its fragment, so the response is not joined again).
- its *base view* (what the records say) and the *inputs* of what is per user and per listing:
  whether its kernel is in this user's launcher, its disk use, why this user may not change
  its store or copy to the shared store, whether they may approve, its publish request;
- its *fragment*: the JSON text of the full view, reused while fingerprint and inputs are the
  same.

The per-user inputs that are the same for every environment of a store (this user's
kernelspecs, the disk use figures, why they may not change the store or copy to the shared one,
whether they may approve, their publish requests) are compared once per store per listing: each
store gets a *token* (the same object while they are unchanged), and an environment whose
fingerprint is unchanged and whose fragment was made with the store's current token is not
looked at further. A listing is then one ``stat`` pass.

Its answer is made once per change, not once per request: a :class:`.listbody.Response` holds
the joined JSON (as bytes), its ETag (a hash of them) and its gzip. A listing whose every
fragment is the one the last response was joined from returns that response (no join, no
encoding, no compression); one whose joined bytes turn out equal to the last ones (a view read
again, to the same result) keeps the last response too, with its gzip and ETag. A client that
sends ``If-None-Match`` with that ETag gets 304 Not Modified.

The cache is written (off the request path) to the user's Jupyter data directory
(``env_manager/listing-<digest>.jsonl``, mode 0600), so the first listing after a server
start checks fingerprints instead of reading every record again. It keeps each entry's compact
fragment too, with the reasons they number (a line of their own): making them again from the
full fragments was half of a restart's first lists at 3,000 environments.

The list sends what the panel shows: a build's ``phases`` are left out of ``latest_build``
(``GET environments/{scope}/{name}`` and ``GET .../builds/{version}`` carry them), and the
panel asks for the *compact* list (:mod:`.listbody`): each action's reason sent once per
response, not once per environment. An entry keeps its compact fragment beside the full one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import kernels
from .actions import NO_SHARED, env_actions
from .diskuse import env_dirs
from .errors import NotFound
from .listbody import SEPARATORS, Reasons, Response, compact_fragment
from .store import Store

if TYPE_CHECKING:
    from .publishing import DecorateContext
    from .service import EnvService

FORMAT = 4  # 2: an entry says whether it is a managed environment's; 3: no spaces in fragments;
# 4: the compact fragments and their reasons are kept too
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
    managed: bool = True  # False: a prefix made by conda (its view says so too)
    token: tuple[Any, ...] | None = None  # its store's token when its inputs were last compared
    compact: tuple[str, str] | None = None  # (the fragment it was made from, its compact text)


def _stamps(paths: tuple[str, ...]) -> tuple[int, ...]:
    try:  # all there: the usual case, one comprehension
        return tuple([os.stat(path).st_mtime_ns for path in paths])
    except OSError:
        pass
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
        self._responses: dict[tuple[str | None, str], Response] = {}  # (scope, view) -> last
        self._reasons = Reasons()  # the compact lists' (for the server's life)
        self._tokens: dict[str, tuple[Any, ...]] = {}  # scope -> its store's current token
        self._kernels: tuple[tuple[int, ...], set[str]] | None = None
        self._kernels_gen = 0  # moves when the set of this user's kernelspecs changes
        self._timer: threading.Timer | None = None
        self._busy = 0  # listings under way
        self._busy_lock = threading.Lock()

    # -- what the doors call -------------------------------------------------------------------

    def views(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every environment's view (a copy each: callers may change them)."""
        with self._listing():
            entries = self._pass(scope)
        self._save_later()
        return [json.loads(e.fragment) for e in entries]

    def response(self, scope: str | None = None, view: str = "full") -> Response:
        """``GET environments``: ``{"environments": [...]}`` (compact: with ``"reasons"``), the
        last response again if nothing it was made of changed."""
        with self._listing():
            response = self._respond(scope, view, self._pass(scope))
        self._save_later()
        return response

    def prime(self) -> None:
        """Make the lists (and their gzip) once, before a server's other start-up work: the
        full list of both stores and the panel's, compact and per store. Their first requests
        then only check fingerprints, instead of sharing the interpreter with the recovery,
        the kernel sync and the watcher's first scan."""
        with self._listing():
            passes = [(store.scope, self._pass(store.scope)) for store in self.svc.stores()]
            made = [self._respond(None, "full", [e for _, entries in passes for e in entries])]
            made += [self._respond(scope, "compact", entries) for scope, entries in passes]
        self._save_later()
        for response in made:
            response.gzipped()

    # -- the listing -----------------------------------------------------------------------------

    def wait_idle(self, max_s: float = 0.5) -> None:
        """Background passes (disk use, and at a start the recovery, the kernel sync and the
        watcher's first snapshot) call this between environments: while a listing runs they
        wait, so it does not share the interpreter with them (at most ``max_s``)."""
        deadline = time.monotonic() + max_s
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.005)

    @contextlib.contextmanager
    def _listing(self) -> Iterator[None]:
        """One listing at a time (the lock); background passes see it under way (busy)."""
        with self._busy_lock:
            self._busy += 1
        try:
            with self._lock:
                yield
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _pass(self, scope: str | None) -> list[Entry]:
        """Every environment's entry, its fragment up to date (the lock is held)."""
        svc = self.svc
        self._load()
        installed = self._installed()
        shared = svc.shared
        shared_denial = NO_SHARED if shared is None else shared.write_denial()
        context = svc.publishing.context()
        disk_gen = svc.disk.generation
        out: list[Entry] = []
        seen: set[tuple[str, str]] = set()
        stores = svc.stores(scope)
        for store in stores:
            denial = store.write_denial()  # per store: its environments share its modes
            common = (denial, shared_denial, *context.approve)
            requests = context.requests if store.scope == "local" else None
            token = self._token(store.scope, (self._kernels_gen, disk_gen, common, requests))
            managed = store.managed_names()
            parents = _stamps((str(store.meta / "prefixes"), str(store.meta / "pins")))
            for name in managed:
                entry = self._managed(store, name, parents)
                if entry is None:
                    continue  # deleted while we listed
                seen.add((store.scope, name))
                if entry.token is not token or not entry.fragment:
                    self._finish(store, entry, installed, common, context, token)
                out.append(entry)
            for name in store.unmanaged_names(set(managed)):
                entry = self._unmanaged(store, name)
                seen.add((store.scope, name))
                if entry.token is not token or not entry.fragment:
                    self._finish(store, entry, installed, common, context, token)
                out.append(entry)
        if len(seen) != len(self._entries):  # some other scope's, or deleted environments
            scopes = {s.scope for s in stores}
            for key in [k for k in self._entries if k[0] in scopes and k not in seen]:
                del self._entries[key]
                self._dirty = True
        return out

    def _token(self, scope: str, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        """The store's token: the last one while these inputs are equal to its own."""
        last = self._tokens.get(scope)
        if last is not None and last == inputs:
            return last
        self._tokens[scope] = inputs
        return inputs

    def _respond(self, scope: str | None, view: str, entries: list[Entry]) -> Response:
        """The last response if these entries make the same list, else a new one."""
        if view == "compact":
            parts = [self._compact(e) for e in entries]
        else:
            parts = [e.fragment for e in entries]
        last = self._responses.get((scope, view))
        if last is not None and last.made_of(parts):
            return last  # (a compact one's reasons: those its parts name were there already)
        head = '{"reasons":' + self._reasons.json() + "," if view == "compact" else "{"
        data = (head + '"environments":[' + ",".join(parts) + "]}").encode()
        if last is not None and last.data == data:
            last.parts = parts  # fragments made again, to the same text
            return last
        response = Response(parts, data)
        self._responses[(scope, view)] = response
        return response

    def _compact(self, entry: Entry) -> str:
        """The entry's compact fragment, made once per fragment."""
        fragment = entry.fragment
        if entry.compact is None or entry.compact[0] is not fragment:
            entry.compact = (fragment, compact_fragment(fragment, self._reasons))
        return entry.compact[1]

    def _managed(self, store: Store, name: str, parents: tuple[int, ...]) -> Entry | None:
        key = (store.scope, name)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.managed  # an adopted prefix's conda-meta does not change
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
        previous, entry = entry, Entry(name, tuple(paths), stamps, base, tuple(dirs))
        if (
            previous is not None
            and previous.fragment
            and previous.base == base
            and previous.dirs == entry.dirs
        ):
            # Read again to the same records (a building environment is, at every listing):
            # its fragment stands while its inputs do, and the response is not joined again.
            entry.fragment, entry.inputs, entry.token = (
                previous.fragment,
                previous.inputs,
                previous.token,
            )
        entry.parents = parents if relies else ()
        if base["pinned"]:
            entry.expires = time.time() + PINS_RECHECK_S
        if base["status"] == "building" or _fresh(stamps) or (relies and _fresh(parents)):
            entry.stamps = ()  # never equal: read again next time
        self._entries[key] = entry
        self._dirty = self._dirty or bool(entry.stamps)
        return entry

    def _installed(self) -> set[str]:
        """The names of this user's kernelspecs, read again when their directory changed
        (the generation moves when they are not the same names)."""
        top = str(self.svc.kernels.dir)
        stamp = _stamps((top,))
        cached = self._kernels
        if cached is not None and cached[0] == stamp:
            return cached[1]
        names = self.svc.kernels.installed()
        if cached is None or cached[1] != names:
            self._kernels_gen += 1
        self._kernels = (() if _fresh(stamp) else stamp, names)  # (): read them again
        return names

    def _unmanaged(self, store: Store, name: str) -> Entry:
        key = (store.scope, name)
        entry = self._entries.get(key)
        if entry is not None and not entry.managed and _stamps(entry.paths) == entry.stamps:
            return entry
        paths = (os.path.join(store.prefix(name), "conda-meta"),)
        stamps = _stamps(paths)
        base = self.svc.views.unmanaged(store, name, set())
        entry = Entry(name, paths, stamps, base, _dirs(store, name), managed=False)
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
        token: tuple[Any, ...],
    ) -> None:
        """Make the entry's fragment again if anything it depends on changed (its store's
        token did, or the entry is new)."""
        name = entry.name
        kname = kernels.kernel_name(store.scope, name)
        disk = self.svc.disk.peek(store.scope, name, entry.dirs)
        request = context.requests.get(name) if store.scope == "local" else None
        inputs = (
            kname in installed,
            disk,
            *common,
            None if request is None else json.dumps(request, sort_keys=True),
        )
        if inputs == entry.inputs and entry.fragment:
            entry.token = token
            return
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
        entry.fragment = json.dumps(view, separators=SEPARATORS)
        entry.token = token
        self._dirty = self._dirty or bool(entry.stamps)

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
                reasons = Reasons.of(json.loads(f.readline()))
                for line in f:
                    meta, fragment, compact = line.rstrip("\n").split("\t", 2)
                    scope, name, paths, stamps, dirs, inputs, expires, parents, managed = (
                        json.loads(meta)
                    )
                    self._entries[(scope, name)] = entry = Entry(
                        name,
                        tuple(paths),
                        tuple(stamps),
                        None,
                        tuple(dirs),
                        tuple(parents),
                        tuple(inputs),
                        fragment,
                        expires,
                        bool(managed),
                    )
                    if compact:
                        entry.compact = (fragment, compact)
        except (OSError, ValueError, TypeError):
            self._entries.clear()  # no cache, or not ours: read the records
            return
        self._reasons = reasons  # (loaded by the first listing: none was numbered before)
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
                # Each with its compact fragment, made here if no panel asked since it changed
                # (a server left alone, whose disk use pass made fragments again): the next
                # start then makes none.
                rows = [
                    (
                        key,
                        (e.paths, e.stamps, e.dirs, e.inputs, e.expires, e.parents, e.managed),
                        e.fragment,
                        self._compact(e),
                    )
                    for key, e in self._entries.items()
                    if e.fragment and e.stamps
                ]
                reasons = self._reasons.texts()  # all those the compact fragments number
            lines = [json.dumps(self._header()), json.dumps(reasons)]
            lines += [
                f"{json.dumps([*key, *meta])}\t{fragment}\t{compact}"
                for key, meta, fragment, compact in rows
            ]
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
