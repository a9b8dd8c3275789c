"""Notices what other processes change in the stores and tells the server's clients.

The CLI, the magics and other users' servers (on a shared store) change environments on disk
without going through this server; their events stay in their own process. The watcher polls
the stores' metadata directories (a few ``stat`` calls per environment, off the event loop) and
emits the same ``environment`` and ``build`` events the server emits for its own actions, so
the panel stays current without polling the REST API. Publish requests changed elsewhere come
from the audit log (:mod:`.request_watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from .request_watch import RequestWatch
from .store import LIVE, Store

Snapshot = dict[tuple[str, str], tuple[int, int, int, int]]


def _stat(path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


class StoreWatcher:
    def __init__(self, service, interval_s: float = 2.0):
        self.service = service
        self.interval_s = interval_s
        self._snapshot: Snapshot = {}
        self._latest: dict[tuple[str, str], tuple[int, str, str | None]] = {}
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.requests = RequestWatch(service)

    def snapshot(self) -> Snapshot:
        """(scope, name) -> mtimes of the env's metadata, its builds, its latest build, its
        prefix's conda-meta (unmanaged environments: only the last)."""
        snap: Snapshot = {}
        for store in self.service.stores():
            managed = store.managed_names()
            for name in managed:
                builds = store.env_dir(name) / "builds"
                latest = self._latest.get((store.scope, name), (0, "", None))[0]
                snap[(store.scope, name)] = (
                    _stat(store.env_dir(name)),
                    _stat(builds),
                    _stat(builds / str(latest)) if latest else 0,
                    _stat(store.prefix(name) / "conda-meta"),
                )
            for name in store.unmanaged_names(set(managed)):
                snap[(store.scope, name)] = (0, 0, 0, _stat(store.prefix(name) / "conda-meta"))
        return snap

    def changes(self) -> list[tuple[str, dict[str, Any]]]:
        """Compare with the previous snapshot; the events that describe the difference."""
        before, after = self._snapshot, self.snapshot()
        events: list[tuple[str, dict[str, Any]]] = []
        for key in after.keys() - before.keys():
            events.append(("environment", {"action": "created", "scope": key[0], "name": key[1]}))
        for key in before.keys() - after.keys():
            events.append(("environment", {"action": "deleted", "scope": key[0], "name": key[1]}))
            self._latest.pop(key, None)
        for key in after.keys() & before.keys():
            if after[key] != before[key]:
                events.append(
                    ("environment", {"action": "updated", "scope": key[0], "name": key[1]})
                )
        for key in after:
            if key in before and after[key][1:3] == before[key][1:3]:
                continue
            event = self._build_change(*key)
            if event:
                events.append(("build", event))
        # Latest versions may have moved: take their stamps now so the next round compares.
        self._snapshot = self.snapshot() if events else after
        return events + self.requests.changes()

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
                events = await asyncio.to_thread(self.changes)
                if any(kind != "request" for kind, _ in events):
                    # A teammate's new shared environment gets this user's kernelspec now,
                    # not at the next server start; before the events, so that clients that
                    # refresh their kernelspecs on them find it.
                    await asyncio.to_thread(self.service.kernels.sync)
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
