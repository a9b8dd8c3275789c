"""Who and where: this host, this user, one process named by its pid and start time, and the
marker that names which build a prefix is.

Only ``os`` is imported: the kernel launcher (:mod:`.launch`) runs these before every kernel
start, where each millisecond of imports is one the user waits for.
"""

from __future__ import annotations

import os

MARKER = "conda-meta/envmgr-build"
"""Written into each prefix we put in use: which of our builds it is (JSON)."""


def hostname() -> str:
    """This host's name, as ``socket.gethostname()`` gives it (without importing socket)."""
    return os.uname().nodename


def current_user() -> str:
    for var in ("JUPYTERHUB_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover
        return str(os.getuid())


def process_start(pid: int) -> int | None:
    """A process's start time (clock ticks after boot, /proc/PID/stat field 22): with the pid,
    it names one process (a pid alone may have been reused)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def running(pid: int, start: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs (on this host); a
    zombie has ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if start is not None:
        current = process_start(pid)
        if current is not None and current != start:
            return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True
