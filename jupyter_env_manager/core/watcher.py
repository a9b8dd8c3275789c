"""Notices what other processes change in the stores and tells the server's clients.

The CLI, the magics and other users' servers (on a shared store) change environments on disk
without going through this server; their events stay in their own process. The watcher polls
the stores' metadata directories (a few ``stat`` calls per environment, off the event loop) and
emits the same ``environment`` and ``build`` events the server emits for its own actions, so
the panel stays current without polling the REST API. Publish requests changed elsewhere come
from the audit log (:mod:`.request_watch`).

A round costs what changed, not what exists (a shared store may hold thousands of
environments):

- Every round lists the stores' names (two ``scandir``): environments created or deleted
  anywhere are seen at the next round.
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
import zlib
from typing import Any

from .request_watch import RequestWatch
from .store import LIVE, Store

Key = tuple[str, str]  # (scope, name)
Stamp = tuple[int, int, int, int]
Snapshot = dict[Key, Stamp]

HOT_ROUNDS = 15  # rounds an environment stays hot after it changed (30 s at the default 2 s)
QUIET_ROUNDS = 15  # a quiet environment is looked at once in this many rounds


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
        self._notice_lock = threading.Lock()
        self._noticed: set[Key] = set()
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.requests = RequestWatch(service)
        self.looked = 0  # environments fingerprinted by the last round (for tests and benches)

    # -- what this server did itself ---------------------------------------------------------

    def notice(self, kind: str, data: dict[str, Any]) -> None:
        """An event this server emits (any thread): its environment is hot from the next
        round."""
        scope, name = data.get("scope"), data.get("name")
        if not isinstance(scope, str) or not isinstance(name, str):
            return
        with self._notice_lock:
            self._noticed.add((scope, name))

    # -- fingerprints ------------------------------------------------------------------------

    def names(self) -> dict[Key, bool]:
        """(scope, name) -> managed, of every environment of the readable stores."""
        out: dict[Key, bool] = {}
        for store in self.service.stores():
            managed = store.managed_names()
            out.update(((store.scope, name), True) for name in managed)
            out.update(((store.scope, name), False) for name in store.unmanaged_names(set(managed)))
        return out

    def _stamp(self, key: Key, managed: bool) -> Stamp:
        """mtimes of the env's metadata, its builds, its latest build, its prefix's conda-meta
        (unmanaged environments: only the last)."""
        store: Store = self.service.store(key[0])
        name = key[1]
        conda_meta = _stat(os.path.join(store.root, name, "conda-meta"))
        if not managed:
            return (0, 0, 0, conda_meta)
        env_dir = store.env_dir(name)
        builds = env_dir / "builds"
        latest = self._latest.get(key, (0, "", None))[0]
        return (
            _stat(env_dir),
            _stat(builds),
            _stat(builds / str(latest)) if latest else 0,
            conda_meta,
        )

    def snapshot(self) -> Snapshot:
        """The fingerprint of every environment (what a round would see if all were hot)."""
        return {key: self._stamp(key, managed) for key, managed in self.names().items()}

    def _hot(self, key: Key) -> bool:
        if self._hot_until.get(key, -1) >= self._round:
            return True
        latest = self._latest.get(key)
        return latest is not None and latest[1] in LIVE

    def _due(self, key: Key) -> bool:
        """Whether a quiet environment is in this round's slice (a fixed slice per key)."""
        slot = zlib.crc32(f"{key[0]}/{key[1]}".encode()) % self.quiet_rounds
        return slot == self._round % self.quiet_rounds

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
        before = self._snapshot
        names = self.names()
        after: Snapshot = {}
        look: list[Key] = []
        for key in names:
            if key not in before or self._hot(key) or self._due(key):
                look.append(key)
            else:
                after[key] = before[key]
        for key in look:
            after[key] = self._stamp(key, names[key])
        self.looked = len(look)
        events: list[tuple[str, dict[str, Any], bool]] = []
        changed: set[Key] = set()
        for key in after.keys() - before.keys():
            events.append(
                ("environment", {"action": "created", "scope": key[0], "name": key[1]}, False)
            )
            changed.add(key)
        for key in before.keys() - after.keys():
            events.append(
                ("environment", {"action": "deleted", "scope": key[0], "name": key[1]}, False)
            )
            self._latest.pop(key, None)
            self._hot_until.pop(key, None)
        for key in look:
            if key in before and after[key] != before[key]:
                events.append(
                    ("environment", {"action": "updated", "scope": key[0], "name": key[1]}, False)
                )
                changed.add(key)
        for key in look:
            if key in before and after[key][1:3] == before[key][1:3]:
                continue
            event = self._build_change(*key)
            if event:
                finished = event["action"] == "finished" and event.get("status") == "succeeded"
                events.append(("build", event, finished))
                changed.add(key)
        for key in changed:
            self._hot_until[key] = self._round + HOT_ROUNDS
            if key in after:  # latest versions may have moved: stamp again, the next round compares
                after[key] = self._stamp(key, names[key])
        self._snapshot = after
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
        self._latest[(scope, name)] = current
        if previous is None or previous == current:
            return None
        if previous[0] != build.version and build.status == "queued":
            action = "queued"
        elif build.status in LIVE:
            action = "phase"
        else:
            action = "finished"
        return build.event(action, scope, name)

    def prime(self) -> None:
        """Take the first snapshot (and every environment's latest build) without emitting."""
        for store in self.service.stores():
            for name in store.managed_names():
                build = store.latest_build(name)
                if build:
                    self._latest[(store.scope, name)] = (build.version, build.status, build.phase)
        self._snapshot = self.snapshot()
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
