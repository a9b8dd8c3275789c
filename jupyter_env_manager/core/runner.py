"""Running builds: a worker process per build, started by the door that asked for it.

- :class:`BuildQueue` is the server's: builds wait for one of ``max_concurrent_builds`` slots,
  run as child processes (never on the event loop), report phases as events, and can be
  cancelled (the worker's whole process group is terminated).
- :class:`ForegroundRunner` is the CLI's and the magics': it runs the worker now
  (:func:`run_foreground`) and streams its log to a progress display, so a terminal or a
  notebook cell shows the build live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .store import LIVE, STOP_REASON, Build

CANCEL_GRACE_S = 10.0


def worker_argv(build_dir: Path) -> list[str]:
    return [sys.executable, "-m", "jupyter_env_manager.core.worker", str(build_dir)]


class BuildQueue:
    """Background builds of one server, at most ``max_concurrent`` at a time."""

    def __init__(
        self,
        service,
        max_concurrent: int,
        timeout_s: float = 3600,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        self.service = service
        self._loop = loop or asyncio.get_event_loop()
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[tuple[str, str, int], asyncio.Task] = {}
        self._procs: dict[tuple[str, str, int], asyncio.subprocess.Process] = {}
        self._cancelled: set[tuple[str, str, int]] = set()

    def submit(self, scope: str, name: str, build: Build) -> Build:
        """Queue a recorded build (from any thread); it runs when a slot is free."""
        self._loop.call_soon_threadsafe(self._start, (scope, name, build.version))
        return build

    def _start(self, key: tuple[str, str, int]) -> None:
        task = asyncio.create_task(self._run(key))
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))

    def running(self) -> list[tuple[str, str, int]]:
        return list(self._tasks)

    async def _run(self, key: tuple[str, str, int]) -> None:
        scope, name, version = key
        service = self.service
        async with self._slots:
            if key in self._cancelled:
                return
            build_dir = service.builds.dir(scope, name, version)
            log = open(build_dir / "log.txt", "ab")
            try:
                proc = await asyncio.create_subprocess_exec(
                    *worker_argv(build_dir),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
            finally:
                log.close()
            self._procs[key] = proc
            try:
                await asyncio.wait_for(self._follow(key, proc), self.timeout_s)
            except asyncio.TimeoutError:
                reason = f"The build took longer than build_timeout_s ({self.timeout_s:.0f} s)"
                # The worker reads why it is stopped: a timeout is a failure, not a cancel.
                (build_dir / STOP_REASON).write_text(json.dumps({"error": reason}))
                await self._terminate(proc)
                await asyncio.to_thread(
                    service.builds.finish_unfinished, scope, name, version, "failed", reason
                )
            finally:
                self._procs.pop(key, None)
        await self._finished(key, proc.returncode)

    async def _follow(self, key, proc: asyncio.subprocess.Process) -> None:
        scope, name, version = key
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("event") in ("phase", "status"):
                now = Build(version, event.get("status", "running"), phase=event.get("phase"))
                self.service.emit("build", now.event("phase", scope, name))
        await proc.wait()

    async def _finished(self, key, code: int | None) -> None:
        scope, name, version = key
        service = self.service

        def settle() -> Build:
            if key in self._cancelled:
                return service.builds.finish_cancelled(scope, name, version, "the user")
            return service.builds.finish_unfinished(
                scope, name, version, "failed", f"The build worker ended unexpectedly (exit {code})"
            )

        build = await asyncio.to_thread(settle)
        self._cancelled.discard(key)
        service.emit("build", build.event("finished", scope, name))

    async def cancel(self, scope: str, name: str, version: int) -> None:
        key = (scope, name, version)
        self._cancelled.add(key)
        proc = self._procs.get(key)
        if proc is not None:
            await self._terminate(proc)
            return
        # Queued here, or run by another process (the CLI, another server): stop it by pid.
        build = await asyncio.to_thread(self.service.builds.get, scope, name, version)
        owner = build.owner or {}
        if build.status == "running" and owner.get("pid") and owner.get("pid") != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(owner["pid"], signal.SIGTERM)
            for _ in range(int(CANCEL_GRACE_S * 10)):
                await asyncio.sleep(0.1)
                build = await asyncio.to_thread(self.service.builds.get, scope, name, version)
                if build.status not in LIVE:
                    return
        task = self._tasks.get(key)
        build = await asyncio.to_thread(
            self.service.builds.finish_cancelled, scope, name, version, "the user"
        )
        if task is not None and key not in self._procs:
            task.cancel()
            self._tasks.pop(key, None)
            self.service.emit("build", build.event("finished", scope, name))

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), CANCEL_GRACE_S)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def shutdown(self) -> None:
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for task in list(self._tasks.values()):
            task.cancel()


class ForegroundRunner:
    """Runs each build now, in this process's foreground, reporting to a progress display
    (``start``/``log``/``event`` methods, as the CLI's ``Progress``)."""

    def __init__(self, service, progress):
        self.service = service
        self.progress = progress

    def submit(self, scope: str, name: str, build: Build) -> Build:
        doing = {"build": "building", "revert": "reverting", "copy": "copying"}.get(build.kind)
        self.progress.start(f"{doing or build.kind} {scope}/{name} v{build.version}")
        return run_foreground(
            self.service,
            scope,
            name,
            build,
            on_log=self.progress.log,
            on_event=self.progress.event,
        )


def run_foreground(
    service,
    scope: str,
    name: str,
    build: Build,
    on_log: Callable[[str], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Build:
    """Run a prepared build now, in a worker process, streaming its log lines to ``on_log``."""
    build_dir = service.builds.dir(scope, name, build.version)
    log_path = build_dir / "log.txt"
    with open(log_path, "ab") as err:
        proc = subprocess.Popen(
            worker_argv(build_dir),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    offset = 0
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        pending = b""
        while True:
            # Wake up on the worker's events (or its exit), or every 100 ms for new log lines.
            readable, _, _ = select.select([proc.stdout], [], [], 0.1)
            chunk = (proc.stdout.read() or b"") if readable else b""
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                with contextlib.suppress(ValueError):
                    if on_event and raw.strip():
                        on_event(json.loads(raw))
            if on_log:
                data, offset = service.builds.read_log(scope, name, build.version, offset)
                for line in data.decode(errors="replace").splitlines():
                    on_log(line)
            if readable and not chunk:  # end of the worker's stdout: it is gone
                proc.wait()
                break
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        service.builds.finish_cancelled(scope, name, build.version, "the user")
    result = service.builds.finish_unfinished(
        scope,
        name,
        build.version,
        "failed",
        f"The build worker ended unexpectedly (exit {proc.returncode})",
    )
    service.emit("build", result.event("finished", scope, name))
    return result
