"""The server extension's lifecycle: start-up work off the event loop, a clean stop."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from helpers import build

from jupyter_env_manager.core import kernels
from jupyter_env_manager.server.events import EVENT_IDS


def extension_of(serverapp):
    return next(iter(serverapp.extension_manager.extension_apps["jupyter_env_manager"]))


async def test_start_up_recovery_runs_while_the_server_answers(jp_fetch, jp_serverapp):
    ext = extension_of(jp_serverapp)
    service = ext.service
    service.envs.create({"name": "demo", "conda": ["alpha"]})
    assert build(service, "local", "demo").status == "succeeded"
    kernels.remove_kernelspec("local", "demo")  # lost with the last server: sync brings it back

    release = threading.Event()
    real_recover = service.recover

    def slow_recover():
        assert release.wait(60), "the test never released recovery"
        return real_recover()

    service.recover = slow_recover
    events = []

    async def listener(logger, schema_id, data):
        events.append(dict(data))

    jp_serverapp.event_logger.add_listener(schema_id=EVENT_IDS["kernel"], listener=listener)
    await ext._start_jupyter_server_extension(jp_serverapp)
    try:
        # Recovery is blocked in its thread, and the server still answers.
        for _ in range(3):
            r = await jp_fetch("env-manager", "info")
            assert r.code == 200 and json.loads(r.body)["user"]
        assert not ext.startup.done()
    finally:
        release.set()
    await asyncio.wait_for(ext.startup, 60)
    assert "envmgr-demo" in kernels.installed()
    # ... and says so, so that clients loaded meanwhile refresh their kernelspecs.
    expected = {
        "action": "activated",
        "scope": "local",
        "name": "demo",
        "kernel_name": "envmgr-demo",
    }
    for _ in range(100):
        if expected in events:
            break
        await asyncio.sleep(0.05)
    assert expected in events, events


async def test_stop_extension_stops_the_watcher_and_the_queue(jp_serverapp):
    ext = extension_of(jp_serverapp)
    assert ext.watcher is not None and ext.watcher._task is not None
    task = ext.watcher._task
    await ext.stop_extension()
    assert ext.watcher._task is None and task.done()


async def test_stopping_the_watcher_waits_for_its_round(service):
    """A round's work runs in a thread: stop() must not return while it still runs (it would go
    on after the server stopped, e.g. writing a kernelspec into whatever HOME is then set)."""
    from jupyter_env_manager.core.watcher import StoreWatcher

    service.envs.create({"name": "w"})
    watcher = StoreWatcher(service, interval_s=0.05)
    started, finished = threading.Event(), threading.Event()

    def slow_sync(**_kwargs):
        started.set()
        time.sleep(1.0)
        finished.set()

    service.kernels.sync = slow_sync  # type: ignore[method-assign]
    watcher.start()
    await asyncio.sleep(0.2)  # primed
    service.envs.update("local", "w", {"description": "changed"})  # a change: a round syncs
    for _ in range(200):
        if started.is_set():
            break
        await asyncio.sleep(0.05)
    assert started.is_set(), "the watcher never synced"
    await watcher.stop()
    assert finished.is_set(), "stop() returned while the round's thread was still running"
