"""Notices what other processes change in the stores and tells the server's clients.

The CLI, the magics and other users' servers (on a shared store) change environments on disk
without going through this server; their events stay in their own process. The watcher polls
the stores' metadata directories (a few ``stat`` calls per environment, off the event loop) and
emits the same ``environment`` and ``build`` events the server emits for its own actions, so
the panel stays current without polling the REST API. Publish requests changed elsewhere come
from the audit log (:mod:`.request_watch`).

A round costs what changed, not what exists (a shared store may hold thousands of
environments):

- Every round stats each store's metadata folder and root, and lists them again when they
  changed (:meth:`StoreWatcher._listing`): environments created or deleted anywhere are seen at
  the next round.
- An environment is *hot* while a build of it is queued or running, for ``HOT_ROUNDS`` rounds
  after it changed, and when this server just acted on it (:meth:`StoreWatcher.notice`): its
  fingerprint (four ``stat``) is taken every round.
- The other, *quiet* environments are fingerprinted in ``quiet_rounds`` slices, one slice a
  round: a change made elsewhere to a quiet environment is seen within ``quiet_rounds`` rounds
  (``watch_interval_s × watch_quiet_rounds``, 30 s by default), and it is hot from then on.
- Only the environments that changed are re-synced (``Kernels.sync(only=...)``); the full sync
  runs once, at the server's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

from .request_watch import RequestWatch
from .store import LIVE, Store

Key = tuple[str, str]  # (scope, name)
Stamp = tuple[int, int, int, int]
Snapshot = dict[Key, Stamp]

HOT_ROUNDS = 15  # rounds an environment stays hot after it changed (30 s at the default 2 s)
QUIET_ROUNDS = 15  # a quiet environment is looked at once in this many rounds
RACY_NS = 2_000_000_000  # a folder changed this recently may change again within its mtime tick


@dataclass
class _Listing:
    stamp: tuple[int, int]  # mtimes of the store's metadata folder and root
    managed: list[str]
    unmanaged: list[str]  # sorted
    names: dict[Key, bool]  # (scope, name) -> managed
    others: list[str]  # folders in the root that are not prefixes (yet)
    generation: int  # one number per listing made


def _stat(path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


class StoreWatcher:
    def __init__(self, service, interval_s: float = 2.0, quiet_rounds: int = QUIET_ROUNDS):
        self.service = service
        self.interval_s = interval_s
        self.quiet_rounds = max(1, quiet_rounds)
        self._snapshot: Snapshot = {}
        self._latest: dict[Key, tuple[int, str, str | None]] = {}
        self._round = 0
        self._hot_until: dict[Key, int] = {}  # key -> the last round it is hot
        self._listings: dict[str, _Listing] = {}
        self._names: tuple[tuple[int, ...], dict[Key, bool]] | None = None
        self._names_seen: dict[Key, bool] | None = None  # the names the snapshot holds
        self._generation = 0
        self._slots: dict[Key, int] = {}
        self._live: set[Key] = set()  # environments whose latest build is queued or running
        self._slices: list[set[Key]] = [set() for _ in range(self.quiet_rounds)]
        self._paths: dict[Key, tuple[str, str, str]] = {}
        self._notice_lock = threading.Lock()
        self._noticed: set[Key] = set()
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.requests = RequestWatch(service)
        self.looked = 0  # environments fingerprinted by the last round (for tests and benches)

    # -- what this server did itself ---------------------------------------------------------

    def notice(self, kind: str, data: dict[str, Any]) -> None:
        """An event this server emits (any thread): the environment of an ``environment`` or
        ``build`` event is hot from the next round."""
        scope, name = data.get("scope"), data.get("name")
        if kind not in ("environment", "build"):
            return  # a kernelspec written (e.g. by a sync) changes nothing in the stores
        if not isinstance(scope, str) or not isinstance(name, str):
            return
        with self._notice_lock:
            self._noticed.add((scope, name))

    # -- fingerprints ------------------------------------------------------------------------

    def names(self) -> dict[Key, bool]:
        """(scope, name) -> managed, of every environment of the readable stores (the same
        dict while no store's listing changed)."""
        listings = [self._listing(store) for store in self.service.stores()]
        which = tuple(listing.generation for listing in listings)
        if self._names is None or self._names[0] != which:
            merged: dict[Key, bool] = {}
            for listing in listings:
                merged.update(listing.names)
            self._names = (which, merged)
        return self._names[1]

    def _listing(self, store: Store) -> _Listing:
        """A store's environments, listed again only when its folders changed: the metadata
        folder (an environment created or deleted) and the root (a prefix made or removed by
        conda, or a version switched in: its symlink is replaced), each on its own; the root's
        folders that are not prefixes yet are looked at each round (conda makes ``conda-meta``
        in a folder it made a moment before). A folder changed in the last 2 s is listed every
        round (two changes within one clock tick leave one mtime)."""
        meta_mtime, root_mtime = _stat(store.meta / "envs"), _stat(store.root)
        known = self._listings.get(store.scope)
        now = time.time_ns()
        managed_ok = known is not None and known.stamp[0] == meta_mtime
        managed_ok = managed_ok and now - meta_mtime > RACY_NS
        root_ok = known is not None and known.stamp[1] == root_mtime and now - root_mtime > RACY_NS
        if root_ok and known is not None:
            root_ok = not any(os.path.isdir(os.path.join(p, "conda-meta")) for p in known.others)
        if known is not None and managed_ok and root_ok:
            return known
        managed = known.managed if known is not None and managed_ok else store.managed_names()
        unmanaged, others = store.root_folders(managed)  # the folders that are not prefixes too
        stamp = (meta_mtime, root_mtime)
        if known is not None and (managed, unmanaged) == (known.managed, known.unmanaged):
            # A folder changed, no environment came or went (a version switched in): the same
            # names, so the round compares no sets of thousands.
            known.stamp, known.others = stamp, others
            return known
        scope = store.scope
        names: dict[Key, bool] = {(scope, name): True for name in managed}
        names.update(((scope, name), False) for name in unmanaged)
        self._generation += 1
        listing = _Listing(stamp, managed, unmanaged, names, others, self._generation)
        self._listings[store.scope] = listing
        return listing

    def _stamp(self, key: Key, managed: bool, latest_mtime: int | None = None) -> Stamp:
        """mtimes of the env's metadata, its builds, its latest build, its prefix's conda-meta
        (unmanaged environments: only the last). ``latest_mtime``: the latest build's, known
        (a quiet environment's latest build is over: a new one shows in its builds' mtime)."""
        paths = self._paths.get(key)
        if paths is None:  # strings made once: a round stats, it builds no Path
            store: Store = self.service.store(key[0])
            env_dir = str(store.env_dir(key[1]))
            paths = (
                os.path.join(store.root, key[1], "conda-meta"),
                env_dir,
                os.path.join(env_dir, "builds"),
            )
            self._paths[key] = paths
        conda_meta, env_dir, builds = paths
        if not managed:
            return (0, 0, 0, _stat(conda_meta))
        if latest_mtime is None:
            latest = self._latest.get(key, (0, "", None))[0]
            latest_mtime = _stat(os.path.join(builds, str(latest))) if latest else 0
        return (_stat(env_dir), _stat(builds), latest_mtime, _stat(conda_meta))

    def snapshot(self) -> Snapshot:
        """The fingerprint of every environment (what a round would see if all were hot)."""
        return {key: self._stamp(key, managed) for key, managed in self.names().items()}

    def _slice(self) -> set[Key]:
        """This round's slice of the environments (each key has a fixed slot)."""
        return self._slices[self._round % self.quiet_rounds]

    def _add_slot(self, key: Key) -> None:
        if key not in self._slots:
            slot = zlib.crc32(f"{key[0]}/{key[1]}".encode()) % self.quiet_rounds
            self._slots[key] = slot
            self._slices[slot].add(key)

    def _hot_keys(self) -> set[Key]:
        """Environments looked at every round: changed lately, acted on, or building."""
        for key in [k for k, last in self._hot_until.items() if last < self._round]:
            del self._hot_until[key]
        return set(self._hot_until) | self._live

    # -- a round -----------------------------------------------------------------------------

    def changes(self) -> list[tuple[str, dict[str, Any]]]:
        """Compare with the previous round; the events that describe the difference."""
        return [(kind, data) for kind, data, _ in self._round_events()] + self.requests.changes()

    def _round_events(self) -> list[tuple[str, dict[str, Any], bool]]:
        """(kind, data, announce): announce is true for a succeeded build's end (its
        kernelspec, written by its worker, is announced after the sync)."""
        self._round += 1
        with self._notice_lock:
            noticed, self._noticed = self._noticed, set()
        for key in noticed:
            self._hot_until[key] = self._round + HOT_ROUNDS
        snapshot = self._snapshot  # changed in place at the end: a round copies no env's stamp
        names = self.names()
        if names is self._names_seen:  # no store's listing changed: nothing created or deleted
            new: set[Key] = set()
            gone: set[Key] = set()
        else:  # set operations, not a loop over every environment
            new = names.keys() - snapshot.keys()
            gone = snapshot.keys() - names.keys()
        for key in new:
            self._add_slot(key)
        hot = new | (self._hot_keys() & names.keys())
        quiet = (self._slice() & names.keys()) - hot
        look = hot | quiet
        fresh: Snapshot = {key: self._stamp(key, names[key]) for key in hot}
        fresh.update((key, self._stamp(key, names[key], snapshot[key][2])) for key in quiet)
        self.looked = len(look)
        events: list[tuple[str, dict[str, Any], bool]] = []
        changed: set[Key] = set()
        for key in new:
            events.append(
                ("environment", {"action": "created", "scope": key[0], "name": key[1]}, False)
            )
            changed.add(key)
        for key in gone:
            events.append(
                ("environment", {"action": "deleted", "scope": key[0], "name": key[1]}, False)
            )
        for key in look - new:
            if fresh[key] != snapshot[key]:
                events.append(
                    ("environment", {"action": "updated", "scope": key[0], "name": key[1]}, False)
                )
                changed.add(key)
        for key in look:
            if key not in new and fresh[key][1:3] == snapshot[key][1:3]:
                continue
            event = self._build_change(*key)
            if event:
                finished = event["action"] == "finished" and event.get("status") == "succeeded"
                events.append(("build", event, finished))
                changed.add(key)
        for key in changed:  # latest versions may have moved: stamp again, the next round
            fresh[key] = self._stamp(key, names[key])  # compares with this
        # Nothing above changed the snapshot: a round that failed is done again in full.
        for key in gone:
            del snapshot[key]
            for known in (self._latest, self._hot_until, self._paths):
                known.pop(key, None)
            self._live.discard(key)
            slot = self._slots.pop(key, None)
            if slot is not None:
                self._slices[slot].discard(key)
        snapshot.update(fresh)
        self._names_seen = names
        for key in changed:
            self._hot_until[key] = self._round + HOT_ROUNDS
        return events

    def _build_change(self, scope: str, name: str) -> dict[str, Any] | None:
        store: Store = self.service.store(scope)
        if not store.exists(name):
            return None
        build = store.latest_build(name)
        if build is None:
            return None
        previous = self._latest.get((scope, name))
        current = (build.version, build.status, build.phase)
        self._remember(scope, name, current)
        if previous is None or previous == current:
            return None
        if previous[0] != build.version and build.status == "queued":
            action = "queued"
        elif build.status in LIVE:
            action = "phase"
        else:
            action = "finished"
        return build.event(action, scope, name)

    def _remember(self, scope: str, name: str, latest: tuple[int, str, str | None]) -> None:
        self._latest[(scope, name)] = latest
        if latest[1] in LIVE:
            self._live.add((scope, name))
        else:
            self._live.discard((scope, name))

    def prime(self) -> None:
        """Take the first snapshot (and every environment's latest build) without emitting
        (at a server's start: while a listing runs, it waits)."""
        for store in self.service.stores():
            for name in store.managed_names():
                self.service.listing.wait_idle()
                build = store.latest_build(name)
                if build:
                    self._remember(store.scope, name, (build.version, build.status, build.phase))
        self._snapshot = self.snapshot()
        for key in self._snapshot:
            self._add_slot(key)
        self.requests.prime()

    def run_round(self) -> list[tuple[str, dict[str, Any]]]:
        """One round: the changes, the kernelspecs of the environments that changed synced
        (before the events, so that clients refreshing their kernelspecs on them find them),
        and the events to emit."""
        found = self._round_events()
        keys = {(data["scope"], data["name"]) for kind, data, _ in found}
        if keys:
            # A teammate's new shared environment gets this user's kernelspec now, not at the
            # next server start; a build that ended elsewhere is announced as a kernel event.
            announce = {(data["scope"], data["name"]) for _, data, flag in found if flag}
            self.service.kernels.sync(only=keys, announce=announce)
        return [(kind, data) for kind, data, _ in found] + self.requests.changes()

    async def run(self) -> None:
        try:
            await asyncio.to_thread(self.prime)
        except Exception:  # an unreachable store: the loop below retries (and logs) it
            self.service.log.exception("jupyter_env_manager: reading the stores failed")
        while True:
            # Wait for the interval or for stop(); a round under way is never cut short (its
            # thread would go on after the server stopped, e.g. writing a kernelspec).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            try:
                events = await asyncio.to_thread(self.run_round)
            except Exception:  # a store on a flaky NFS mount must not stop the watcher
                self.service.log.exception("jupyter_env_manager: watching the stores failed")
                continue
            for kind, data in events:
                self.service.emit(kind, data)

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop after the round under way (if any) has finished: none of its work is left
        running in a thread once the server has stopped."""
        if self._task is not None:
            self._stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
