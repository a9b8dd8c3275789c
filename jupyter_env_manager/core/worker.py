"""The build worker: ``python -m jupyter_env_manager.worker <build dir> [<build id>]``, or
``... worker --spare``: a spare started ahead of its build, which it then reads on stdin
(spare.py; the server's queue keeps one).

One process per build, started by whichever door asked for it (server, CLI, magics). It holds
the environment's build lock while it runs, writes the build's status, phases and log, and
prints one JSON line per state change on stdout for its parent. A SIGTERM (cancel), or a cancel
request file left by another process (it polls for it), ends it cleanly as "cancelled"; a crash
or SIGKILL leaves the lock free, which is how the next reader tells the build was interrupted.
Nothing it does touches the version in use before the swap, its commit point.

The worker outlives its parent: it runs in its own session, and once its stdout is gone (the
server or the CLI died) it stops reporting there and finishes the build all the same; the
store's records say how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path

from .access import enter_store
from .buildjob import BuildJob, BuildLog
from .engine import Builder
from .errors import BuildFailed, Conflict, NotFound
from .spare import SPARE_FLAG, premade_client, wait_for_build
from .store import STOP_REASON, Store, host_owner, now, pause_point

CANCEL_POLL_S = 0.5
_reporting = True


def emit(**event) -> None:
    """One JSON line for the parent; once the parent is gone (a broken pipe), nothing."""
    global _reporting
    if not _reporting:
        return
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        _reporting = False


def lower_priority(niceness: int) -> None:
    """Give the server and the kernels the CPU first: this process and what it starts (uv,
    the verifying python) run ``niceness`` lower.

    Linux's autogroup scheduling (on by default in Debian's and Ubuntu's kernels) shares the
    CPU between sessions first, and nice orders only the processes of one session. A worker is
    a session of its own (it outlives the server), so its nice alone would leave it an equal
    share against the server: the session's own nice (``/proc/self/autogroup``) is raised too.
    Without autogroup (another kernel, a CPU cgroup such as a container's) that file is absent
    or not used, and nice is what counts.
    """
    os.nice(niceness)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(min(niceness, 19)))
    except OSError:
        pass


def run(build_dir: Path, build_id: str | None = None) -> int:
    job = BuildJob.from_dict(json.loads((build_dir / "job.json").read_text()))
    if job.niceness > 0:
        lower_priority(job.niceness)
    store = Store(job.root, job.scope)
    if store.access is not None:  # a shared store: what the build makes is the team's too
        enter_store(store.access)  # files in the home keep the user's umask (see access.py)
    name, version = job.name, job.version
    try:
        lock_fd = store.try_build_lock(name)
    except NotFound:  # deleted before we started
        emit(event="finished", status="gone", error="The environment was deleted")
        return 4
    build = store.build_of(name, version, build_id)
    if build is None:  # deleted (and maybe recreated) before we started: not ours to touch
        emit(event="finished", status="gone", error="The build no longer exists")
        return 4
    if lock_fd is None:
        build = store.finish(
            name, version, "failed", "Another build is running", build_id=build.id,
            clear_staging=False,
        )  # fmt: skip
        emit(event="finished", status=build.status, error=build.error)
        return 3
    with store.env_lock(name):  # queued -> running, or not at all (a cancel won the race)
        build = store.read_build(name, version)
        if build.status == "queued" and store.cancel_requested(name, version):
            build.status, build.error = "cancelled", "The build was cancelled"
            build.finished_at = now()
            store.write_build(name, build)
        if build.status != "queued":
            emit(event="finished", status=build.status, error=build.error)
            return 0
        build.status, build.started_at, build.owner = "running", now(), host_owner()
        store.write_build(name, build)
    emit(event="status", status="running")
    pause_point("running")

    def on_phase(phase: str) -> None:
        with store.env_lock(name):
            current = store.read_build(name, version)
            stamp = now()
            if current.phases:
                current.phases[-1].setdefault("finished_at", stamp)
            current.phases.append({"name": phase, "started_at": stamp})
            current.phase = phase
            # Progress, rewritten at every phase: atomic but not fsynced (see write_json). The
            # running status before it and the final status after it are durable.
            store.write_build(name, current, durable=False)
        emit(event="phase", phase=phase)
        pause_point(f"phase:{phase}")

    log = BuildLog(store.log_path(name, version), on_phase)
    log.write(
        f"build v{version} of {job.scope}/{name} ({job.kind}) by {build.user}, pid {os.getpid()}"
    )
    status, error = "failed", None
    builder = Builder(job, log, premade_client())
    builder.build_id = build.id

    async def watch_cancel(task: asyncio.Task) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            request = await asyncio.to_thread(store.cancel_requested, name, version)
            if request and not builder.committed:
                log.write(f"cancel requested by {request.get('by') or 'another process'}")
                task.cancel()
                return

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        watcher = asyncio.create_task(watch_cancel(task))
        try:
            await builder.run()
        finally:
            watcher.cancel()

    try:
        asyncio.run(main())
        status = "succeeded"
    except BuildFailed as err:
        error = str(err)
    except (Conflict, NotFound) as err:  # deleted or recreated meanwhile: the swap refused
        error = err.message
    except (asyncio.CancelledError, KeyboardInterrupt):
        stop = build_dir / STOP_REASON
        if stop.exists():  # stopped by its parent for a reason (a timeout): a failure
            error = json.loads(stop.read_text()).get("error") or "The build was stopped"
        else:
            request = store.cancel_requested(name, version) or {}
            by = f" by {request['by']}" if request.get("by") else ""
            status, error = "cancelled", f"The build was cancelled{by}"
    except Exception as err:  # a bug or an environment problem: keep the traceback in the log
        error = f"Unexpected error: {err}"
        log.write(traceback.format_exc())
    if builder.committed and status != "succeeded":
        log.write(f"warning: after the new version was put in use: {error}")
        status, error = "succeeded", None
    pause_point("before-record")
    # The log's last line first: whoever sees the final status finds the whole log.
    log.write(f"build {status}" + (f": {error}" if error else ""))
    # On cancel, rattler threads may still be writing: the parent clears staging after exit.
    try:
        final = store.finish(
            name, version, status, error, build_id=build.id, clear_staging=status != "cancelled"
        )
        if (final.status, final.error) != (status, error):  # ended by someone else first
            log.write(f"recorded as {final.status}" + (f": {final.error}" if final.error else ""))
        status, error = final.status, final.error
    except NotFound:  # deleted meanwhile (only possible before the swap)
        status, error = "gone", "The environment was deleted"
    log.close()
    if status != "cancelled":  # whose rattler threads may still write: its exit releases it
        # The end is recorded: a next build of this environment may start before we exit.
        os.close(lock_fd)
    # The parent takes this line as our end (but for a cancel): we only exit after it.
    emit(event="finished", status=status, error=error)
    pause_point("after-end")
    return 0 if status == "succeeded" else 1


def main() -> None:
    # A parent that died closes our stdout: writing there must fail softly, not kill us.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if sys.argv[1:] == [SPARE_FLAG]:  # started ahead of its build: wait for it (spare.py)
        given = wait_for_build()
        if given is None:  # the server stopped or died first
            os._exit(0)
        build_dir, build_id = given
    else:
        build_dir, build_id = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None
    code = run(build_dir, build_id)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    # Skip interpreter teardown: rattler's runtime has been seen to crash there.
    os._exit(code)


if __name__ == "__main__":
    main()
