"""The build worker: ``python -m jupyter_env_manager.worker <build dir>``.

One process per build, started by whichever door asked for it (server, CLI, magics). It holds
the environment's build lock while it runs, writes the build's status, phases and log, and
prints one JSON line per state change on stdout for its parent. A SIGTERM (cancel) ends it
cleanly as "cancelled"; a crash or SIGKILL leaves the lock free, which is how the next reader
tells the build was interrupted. Nothing it does touches the version in use before the swap.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import traceback
from pathlib import Path

from .engine import Builder, BuildFailed, BuildJob, BuildLog
from .store import STOP_REASON, Store, host_owner, now


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def run(build_dir: Path) -> int:
    job = BuildJob.from_dict(json.loads((build_dir / "job.json").read_text()))
    if job.niceness > 0:
        os.nice(job.niceness)  # the server and the kernels come first; uv inherits it
    store = Store(job.root, job.scope)
    if store.access is not None:  # a shared store: what the build makes is the team's too
        os.umask(store.access.umask)
    name, version = job.name, job.version
    lock_fd = store.try_build_lock(name)
    build = store.read_build(name, version)
    if lock_fd is None:
        build.status, build.error, build.finished_at = "failed", "Another build is running", now()
        store.write_build(name, build)
        emit(event="finished", status=build.status, error=build.error)
        return 3
    if build.status != "queued":
        emit(event="finished", status=build.status, error=build.error)
        return 0
    build.status, build.started_at, build.owner = "running", now(), host_owner()
    store.write_build(name, build)
    emit(event="status", status="running")

    def on_phase(phase: str) -> None:
        current = store.read_build(name, version)
        stamp = now()
        if current.phases:
            current.phases[-1].setdefault("finished_at", stamp)
        current.phases.append({"name": phase, "started_at": stamp})
        current.phase = phase
        store.write_build(name, current)
        emit(event="phase", phase=phase)

    log = BuildLog(store.log_path(name, version), on_phase)
    log.write(
        f"build v{version} of {job.scope}/{name} ({job.kind}) by {build.user}, pid {os.getpid()}"
    )
    status, error = "failed", None

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await Builder(job, log).run()

    try:
        asyncio.run(main())
        status = "succeeded"
    except BuildFailed as err:
        error = str(err)
    except (asyncio.CancelledError, KeyboardInterrupt):
        stop = build_dir / STOP_REASON
        if stop.exists():  # stopped by its parent for a reason (a timeout): a failure
            error = json.loads(stop.read_text()).get("error") or "The build was stopped"
        else:
            status, error = "cancelled", "The build was cancelled"
    except Exception as err:  # a bug or an environment problem: keep the traceback in the log
        error = f"Unexpected error: {err}"
        log.write(traceback.format_exc())
    if status != "cancelled":
        # First free the space (a full disk may be why we failed), then record the end.
        # On cancel, rattler threads may still be writing: the parent clears staging after exit.
        store.remove_tree(store.staging_dir(name, version))
    final = store.read_build(name, version)
    final.status, final.error, final.finished_at = status, error, now()
    if final.phases:
        final.phases[-1].setdefault("finished_at", final.finished_at)
    # The log's last line first: whoever sees the final status finds the whole log.
    log.write(f"build {status}" + (f": {error}" if error else ""))
    log.close()
    store.write_build(name, final)
    emit(event="finished", status=status, error=error)
    return 0 if status == "succeeded" else 1


def main() -> None:
    code = run(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: rattler's runtime has been seen to crash there.
    os._exit(code)


if __name__ == "__main__":
    main()
