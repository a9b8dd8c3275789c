"""Helpers of the kill-loop and concurrency suites: processes, servers and the store's
invariants after a fault."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from jupyter_env_manager.core.retention import version_dirs
from jupyter_env_manager.core.runner import worker_argv
from jupyter_env_manager.core.store import LIVE, MARKER, Store, read_json


def wait_for(predicate, timeout: float = 120, what: str = "condition", every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def proc_state(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].split()[0].decode()


def stopped(pid: int) -> bool:
    return proc_state(pid) in ("T", "t")


def alive(pid: int) -> bool:
    """Any thread of it still running: a killed process's leader is a zombie ("Z") while its
    other threads still exit, and its files (and file locks) go only with the last one."""
    try:
        tasks = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return False
    for tid in tasks:
        try:
            data = Path(f"/proc/{pid}/task/{tid}/stat").read_bytes()
        except OSError:
            continue
        if data.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
            return True
    return False


def _holds_files_under(pid: str, root: str) -> bool:
    """A spare worker that took a build names it nowhere on its command line; its stderr (the
    build's log) and its lock files are under the store's root."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(root + os.sep):
                return True
    return False


def workers(root: str | Path) -> list[int]:
    """Build workers (still running, zombies excluded) of the store at ``root``: started for a
    build of it, or spares that took one (an idle spare belongs to no store)."""
    found = []
    needle = str(root).encode()
    module = worker_argv(Path("x"))[2].encode()  # the worker's module, wherever it lives
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if module not in cmdline:
            continue
        if needle in cmdline or _holds_files_under(entry.name, str(root)):
            if alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A real ``jupyter server`` with the extension, as a subprocess; ``call`` its REST API."""

    def __init__(self, env: dict[str, str] | None = None, cwd: str | None = None, **popen):
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
            ],  # fmt: skip
            env=env,
            cwd=cwd,
            **popen,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                if self.call("GET", "env-manager/info")[0] == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw or b"null")
            except ValueError:
                return err.code, {"message": raw.decode(errors="replace")}

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def holders(store: Store, name: str) -> list[str]:
    """Processes with the environment's build lock open (to explain a failure)."""
    lock = str(store.build_lock_path(name))
    found = []
    for entry in Path("/proc").iterdir():
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == lock:
                    found.append(f"{entry.name} {(entry / 'cmdline').read_bytes()[:200]!r}")
        except OSError:
            continue
    return found


def check_consistent(store: Store, name: str, previous: int | None) -> tuple[int | None, str]:
    """The invariants after a fault and its recovery. Returns (version in use, latest status).

    Either the latest build succeeded and is the version in use (the prefix carries its id), or
    it did not and the version in use is ``previous``; nothing is left queued/running, no swap
    journal, no staging, no trash.
    """
    latest = store.latest_build(name)
    assert latest is not None
    assert latest.status not in LIVE, (latest, store.build_locked(name), holders(store, name))
    state = store.read_state(name)
    marker = read_json(store.prefix(name) / MARKER, {}) or {}
    in_use = state.get("active_version")
    assert marker.get("version") == in_use, (marker, state)
    if latest.status == "succeeded":
        assert in_use == latest.version, (latest, state)
        if marker.get("build_id"):
            assert marker["build_id"] == latest.id
    else:
        assert in_use == previous, (latest, state, previous)
    if in_use:
        assert store.read_build(name, in_use).status == "succeeded"
    assert not (store.env_dir(name) / "swap.json").exists()
    assert list((store.meta / "staging").iterdir()) == []
    assert list(store.trash.iterdir()) == []
    # The usual path is a relative symlink to the version in use's own directory; no switch is
    # left half-made, and every version directory is one of a build that succeeded.
    assert not os.path.lexists(store.root / f".{name}.envmgr-link")
    if in_use:
        link = store.prefix(name)
        assert link.is_symlink() and not os.path.isabs(os.readlink(link)), link
        in_use_build = store.read_build(name, in_use)
        assert store.active_prefix(name) == store.version_prefix(name, in_use, in_use_build.id)
    for version, ident, _ in version_dirs(store, name):
        build = store.read_build(name, version)
        assert build.status == "succeeded" and build.id.startswith(ident), (version, build)
    return in_use, latest.status
