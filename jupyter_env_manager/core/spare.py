"""A spare build worker: one process of the server's build queue started ahead of time, its
imports (asyncio, rattler, the engine: ~120 ms of a build's fixed cost) already done and its
rattler client made, waiting on its stdin for the next build. The queue hands it the build,
and starts the next spare when that build is over.

What makes a spare interchangeable with a worker started for the build:

- It is started like one (``worker_argv``'s interpreter and module, its own session, the
  server's environment, working directory, umask and CPU priority) and runs the same
  :func:`worker.run` once it has its build: the job (settings included) is read from the build
  directory then, not when the spare started, and the build's niceness is applied per job as
  before (``os.nice`` only goes up, so the spare waits at the server's priority).
- If the server's environment, working directory, umask or priority changed since the spare
  started, it is not used (a worker started now would see the new ones): it is stopped and the
  build starts a worker of its own.
- A spare that died is not used; one that dies after it was handed a build but before it took
  it (the build still queued: nothing was done) is replaced by a worker of its own for the same
  build, transparently.
- Its stdin is the only link to the server: a server that dies (or stops) closes it, and an
  idle spare then exits; a spare that took a build has let go of its stdin and finishes the
  build, as any worker does. It holds no lock and no file of any store while it waits.

Started lazily, when the first build of a server is over (a server whose users never build pays
nothing), and again after each build, never while one runs: a spare started at the hand-off
imported while the build ran, and on 2 cores that build took twice as long. An idle spare uses
no CPU (it blocks in a read) and the memory of one Python with rattler imported (~35 MiB RSS,
measured by bench row 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

SPARE_FLAG = "--spare"
_premade: tuple[Any, tuple[Any, ...]] | None = None  # (client, credentials' stamp)


def spare_argv() -> list[str]:
    return [sys.executable, "-m", "jupyter_env_manager.core.worker", SPARE_FLAG]


def _umask() -> int | None:
    """This process's umask, read without changing it (``os.umask`` would change it for every
    thread meanwhile); None where /proc does not tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def context() -> tuple[Any, ...]:
    """What a worker inherits from the server and would see differently if started now."""
    return (
        tuple(sorted(os.environ.items())),
        os.getcwd(),
        _umask(),
        os.getpriority(os.PRIO_PROCESS, 0),
        sys.executable,
    )


class Spare:
    """At most one spare worker process; every method runs on the queue's event loop."""

    def __init__(self, log):
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self._context: tuple[Any, ...] | None = None
        self._starting: asyncio.Task | None = None
        self.closed = False

    def refill(self) -> None:
        """Start a spare unless there is one (or one is being started), in the background."""
        if self.closed or self.proc is not None or self._starting is not None:
            return
        self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *spare_argv(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except Exception:  # builds start their own workers: nothing is lost
            self.log.exception("jupyter_env_manager: a spare build worker could not start")
            return
        finally:
            self._starting = None
        if self.closed:
            await _stop(proc)
            return
        self.proc, self._context = proc, context()

    async def take(self, build_dir: Path, build_id: str) -> asyncio.subprocess.Process | None:
        """Hand a build to the spare: its process, now that build's worker; None when there is
        no usable spare (the caller starts a worker of its own)."""
        if self._starting is not None:  # being started: use it rather than start another
            await asyncio.shield(self._starting)
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.returncode is not None or self._context != context():
            await _stop(proc)
            return None
        assert proc.stdin is not None
        line = json.dumps({"build_dir": str(build_dir), "build_id": build_id}) + "\n"
        try:
            proc.stdin.write(line.encode())
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            await _stop(proc)
            return None
        return proc

    async def close(self) -> None:
        """The server stops: stop the spare (never a worker that took a build) and start none."""
        self.closed = True
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        proc, self.proc = self.proc, None
        if proc is not None:
            await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Stop an idle spare: it holds nothing, so a kill is clean."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdin is not None:
        proc.stdin.close()
    await proc.wait()


def _credentials_stamp() -> tuple[Any, ...]:
    """What rattler's client reads when it is made (see diagnose.rattler_client): the files of
    its credential stores, by identity, size and times. (The keyring is asked when a request
    needs it, not when the client is made.)"""
    home = Path.home()
    paths = [
        os.environ.get("RATTLER_AUTH_FILE"),
        home / ".rattler" / "credentials.json",
        os.environ.get("NETRC") or home / ".netrc",
    ]
    stamp: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        stamp.append(st and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stamp)


def premade_client() -> Any:
    """The rattler client this spare made while it waited (making one costs ~5-15 ms: it
    reads the credential stores and the TLS roots), if the credential files are still as they
    were then; None otherwise (the build makes its own). Once only."""
    global _premade
    made, _premade = _premade, None
    if made is None or made[1] != _credentials_stamp():
        return None
    return made[0]


def wait_for_build() -> tuple[Path, str | None] | None:
    """The spare's side: import what a build needs, then wait for one on stdin; (build dir,
    build id), or None once the server is gone. The build's log becomes stderr, as it is for a
    worker started for its build, and stdin is /dev/null again."""
    import rattler  # noqa: F401  (the point: imported before the build arrives)
    import rattler.install  # noqa: F401
    import rattler.solver  # noqa: F401

    from . import diagnose, kernels, lockfile, retention  # noqa: F401  (used by every build)

    global _premade
    stamp = _credentials_stamp()
    _premade = (diagnose.rattler_client(), stamp)
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return None
    data = json.loads(line)
    build_dir = Path(data["build_dir"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(build_dir / "log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(log, 2)
    os.close(log)
    return build_dir, data.get("build_id")
