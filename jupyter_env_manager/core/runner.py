"""Running builds: a worker process per build, started by the door that asked for it.

- :class:`BuildQueue` is the server's: builds wait for one of ``max_concurrent_builds`` slots,
  run as child processes (never on the event loop), report phases as events, and can be
  cancelled (the worker's whole process group is terminated). After its first build, it
  keeps a spare worker started with its imports done (spare.py) and hands the next build to it.
- :class:`ForegroundRunner` is the CLI's and the magics': it runs the worker now
  (:func:`run_foreground`) and streams its log to a progress display, so a terminal or a
  notebook cell shows the build live. It starts a worker per build (no spare: a CLI process
  runs one build, and a spare would outlive it for nothing).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Conflict, NotFound
from .spare import Spare
from .store import LIVE, STOP_REASON, Build, Store, current_user, owner_alive

CANCEL_GRACE_S = 10.0


def worker_argv(build_dir: Path, build_id: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", "jupyter_env_manager.core.worker", str(build_dir)]
    return [*argv, build_id] if build_id else argv


def signal_worker(owner: dict[str, Any], sig: int = signal.SIGTERM) -> bool:
    """Signal a build's worker if it runs on this host and is the very process recorded (pid and
    start time: a reused pid is someone else); False when that cannot be done from here."""
    if owner_alive(owner) is not True:
        return False
    pid = owner["pid"]
    try:
        if os.getpgid(pid) == pid:  # its own session: uv and other children go too
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class _Job:
    scope: str
    name: str
    version: int
    id: str
    proc: asyncio.subprocess.Process | None = None
    cancelled: bool = False
    task: asyncio.Task | None = None
    heard: bool = False  # its worker said something on stdout (it took the build)


class BuildQueue:
    """Background builds of one server, at most ``max_concurrent`` at a time.

    Builds are keyed by their unique id, never by (scope, name, version): a version number
    comes back when an environment is deleted and recreated. Every build submitted here ends
    with a recorded status (succeeded, failed, cancelled...), whatever happens in between.
    """

    def __init__(
        self,
        service,
        max_concurrent: int,
        timeout_s: float = 3600,
        loop: asyncio.AbstractEventLoop | None = None,
        spare: bool = True,
    ):
        self.service = service
        self._loop = loop or asyncio.get_event_loop()
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrent)
        self._jobs: dict[str, _Job] = {}
        self.spare = Spare(service.log) if spare else None
        # Workers past their end, still exiting: the wait for each, and its process.
        self._reaping: dict[asyncio.Future, asyncio.subprocess.Process] = {}

    def submit(self, scope: str, name: str, build: Build) -> Build:
        """Queue a recorded build (from any thread); it runs when a slot is free."""
        job = _Job(scope, name, build.version, build.id)
        self._jobs[build.id] = job
        self._loop.call_soon_threadsafe(self._start, job)
        return build

    async def wait(self, build_id: str) -> None:
        """Until the queue is done with a build submitted here (its end recorded and told)."""
        job = self._jobs.get(build_id)
        while job is not None and job.task is None:
            await asyncio.sleep(0.005)
        if job is not None and job.task is not None:
            await asyncio.gather(job.task, return_exceptions=True)

    def _start(self, job: _Job) -> None:
        job.task = asyncio.create_task(self._run(job))
        job.task.add_done_callback(lambda _t: self._jobs.pop(job.id, None))

    def _store(self, job: _Job) -> Store:
        return self.service.store(job.scope)

    async def _run(self, job: _Job) -> None:
        status, error = "failed", "The build worker ended unexpectedly"
        try:
            async with self._slots:
                if job.cancelled:
                    return  # recorded as cancelled by cancel()
                status, error = await self._work(job)
        except asyncio.CancelledError:  # the server is stopping: its successor reaps the build
            raise
        except Exception as err:  # e.g. the worker could not be started: say so, never hang
            self.service.log.exception("jupyter_env_manager: build %s failed to run", job.id)
            error = f"The build worker could not run: {err}"
        if job.cancelled:
            status, error = "cancelled", "The build was cancelled by the user"
        await self._settle(job, status, error)
        if self.spare is not None:
            # A spare for the next build, once this one is over: started at the hand-off, its
            # imports competed with the build for the CPU (2 cores: a median build of 146 ms
            # instead of 67). The first build of a server starts the first spare.
            self.spare.refill()

    async def _work(self, job: _Job) -> tuple[str, str]:
        """Run the worker to its end; the status to record if it did not record one."""
        build_dir = self._store(job).build_dir(job.name, job.version)
        open(build_dir / "log.txt", "ab").close()  # as a worker of its own would: fail here
        job.proc = await self.spare.take(build_dir, job.id) if self.spare else None
        warm = job.proc is not None
        if job.proc is None:
            job.proc = await self._cold(build_dir, job.id)
        try:
            await asyncio.wait_for(self._follow_all(job, build_dir, warm), self.timeout_s)
        except asyncio.TimeoutError:
            reason = f"The build took longer than build_timeout_s ({self.timeout_s:.0f} s)"
            # The worker reads why it is stopped: a timeout is a failure, not a cancel.
            (build_dir / STOP_REASON).write_text(json.dumps({"error": reason}))
            await self._terminate(job.proc)
            return "failed", reason
        return "failed", f"The build worker ended unexpectedly (exit {job.proc.returncode})"

    async def _cold(self, build_dir: Path, build_id: str) -> asyncio.subprocess.Process:
        """A worker started for this build."""
        with open(build_dir / "log.txt", "ab") as log:
            return await asyncio.create_subprocess_exec(
                *worker_argv(build_dir, build_id),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )

    async def _follow_all(self, job: _Job, build_dir: Path, warm: bool) -> None:
        """Follow the worker; a spare that ended before it took the build (silent, the build
        still queued: nothing was done) is replaced by a worker of its own, transparently."""
        await self._follow(job)
        if not warm or job.heard or job.cancelled:
            return
        store = self._store(job)
        build = await asyncio.to_thread(store.build_of, job.name, job.version, job.id)
        if build is None or build.status != "queued":
            return
        code = job.proc.returncode if job.proc else None
        self.service.log.warning(
            "jupyter_env_manager: the spare worker for build %s ended (exit %s) before it took "
            "the build; starting a worker for it", job.id, code,
        )  # fmt: skip
        job.proc = await self._cold(build_dir, job.id)
        await self._follow(job)

    async def _follow(self, job: _Job) -> None:
        proc = job.proc
        assert proc is not None and proc.stdout is not None
        async for raw in proc.stdout:
            job.heard = True
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.get("event")
            if kind in ("phase", "status"):
                now = Build(job.version, event.get("status", "running"), phase=event.get("phase"))
                self.service.emit("build", now.event("phase", job.scope, job.name))
            elif kind == "finished" and event.get("status") != "cancelled":
                # Its end is recorded and its build lock released: the build is over, and the
                # process's own end (a few ms: its threads, its memory) is awaited aside. A
                # cancelled worker's threads may still write in staging: awaited here.
                self._reap(proc)
                return
        await proc.wait()

    def _reap(self, proc: asyncio.subprocess.Process) -> None:
        task = asyncio.ensure_future(proc.wait())
        self._reaping[task] = proc
        task.add_done_callback(lambda done: self._reaping.pop(done, None))

    async def _settle(self, job: _Job, status: str, error: str) -> None:
        """Record the end (if the worker did not) and tell the clients; a build that is gone
        (its environment deleted) has nothing to tell."""
        store = self._store(job)
        for attempt in range(3):  # a lock held too long elsewhere: try again, then leave it
            try:
                build = await asyncio.to_thread(
                    store.finish, job.name, job.version, status, error, build_id=job.id
                )
                break
            except NotFound:
                return
            except Conflict:
                if attempt == 2:
                    self.service.log.warning(
                        "jupyter_env_manager: could not record the end of %s/%s v%s (its env "
                        "lock stayed taken); the next reader will",
                        job.scope, job.name, job.version,
                    )  # fmt: skip
                    return
                await asyncio.sleep(1)
        if build.status == "succeeded":
            await asyncio.to_thread(self._kernel_after, job)
        self.service.emit("build", build.event("finished", job.scope, job.name))

    def _kernel_after(self, job: _Job) -> None:
        """A build succeeded: sync its environment's kernelspec (its worker wrote it) and tell
        the clients with a ``kernel`` event, before the build's end (clients refresh their
        kernelspecs on kernel events only)."""
        key = (job.scope, job.name)
        try:
            self.service.kernels.sync(only={key}, announce={key})
        except Exception:  # the build did succeed; the watcher's next round syncs again
            self.service.log.exception(
                "jupyter_env_manager: syncing the kernelspec of %s/%s failed", *key
            )

    async def cancel(self, scope: str, name: str, version: int) -> None:
        """Cancel a build: ours, by terminating its worker; queued here, at once; otherwise a
        cancel request its worker honours (and a SIGTERM if it is a process of this host)."""
        store = self.service.store(scope)
        build = await asyncio.to_thread(store.read_build, name, version)
        job = self._jobs.get(build.id)
        if job is not None:
            job.cancelled = True
            if job.proc is not None:
                await self._terminate(job.proc)
            else:  # still waiting for a slot: it will not start
                await self._settle(job, "cancelled", "The build was cancelled by the user")
            return
        await asyncio.to_thread(store.request_cancel, name, version, current_user())
        if build.status == "queued":
            # Queued by another process: record the cancel unless its worker just started
            # (then that worker sees the request and ends itself).
            def cancel_queued() -> Build:
                with store.env_lock(name):
                    now = store.read_build(name, version)
                    if now.id == build.id and now.status == "queued":
                        if not store.build_locked(name):
                            return store.finish(
                                name, version, "cancelled", "The build was cancelled",
                                build_id=build.id, clear_staging=False,
                            )  # fmt: skip
                    return now

            await asyncio.to_thread(cancel_queued)
        elif build.status == "running":
            signal_worker(build.owner or {})
        for _ in range(int(CANCEL_GRACE_S * 10)):
            current = await asyncio.to_thread(store.build_of, name, version, build.id)
            if current is None or current.status not in LIVE:
                return
            await asyncio.sleep(0.1)

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
        """The server stops: builds waiting for a slot end saying so, running workers are
        stopped (recorded failed, with the reason) and every task is awaited: none is left
        pending. (A server that is killed instead leaves its workers running: they finish.)
        The spare worker is stopped (one killed with the server sees its stdin close and
        exits)."""
        if self.spare is not None:
            await self.spare.close()
        jobs = list(self._jobs.values())
        waiting = [job for job in jobs if job.proc is None]
        for job in waiting:
            if job.task is not None:
                job.task.cancel()
        for job in jobs:
            if job.proc is not None and job.proc.returncode is None:
                build_dir = self._store(job).build_dir(job.name, job.version)
                reason = "The server stopped during the build"
                with contextlib.suppress(OSError):
                    (build_dir / STOP_REASON).write_text(json.dumps({"error": reason}))
                await self._terminate(job.proc)
        await asyncio.gather(*(job.task for job in jobs if job.task), return_exceptions=True)
        for job in waiting:
            if not job.cancelled:
                await self._settle(job, "interrupted", "The server stopped before it started")
        if self._reaping:  # their builds are recorded: only their exits are awaited
            _, late = await asyncio.wait(list(self._reaping), timeout=CANCEL_GRACE_S)
            for task in late:  # stuck past its end: nothing of the build is lost
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._reaping[task].pid, signal.SIGKILL)
            await asyncio.gather(*late)


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
            worker_argv(build_dir, build.id),
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
        service.builds.finish_cancelled(scope, name, build.version, "the user", build_id=build.id)
    result = service.builds.finish_unfinished(
        scope,
        name,
        build.version,
        "failed",
        f"The build worker ended unexpectedly (exit {proc.returncode})",
        build_id=build.id,
    )
    service.emit("build", result.event("finished", scope, name))
    return result
