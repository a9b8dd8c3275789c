"""``~/.conda/environments.txt``: the list ``conda env list`` (and tools that read it, such as
nb_conda_kernels) shows. A prefix is added when a build puts it in use and removed with its
environment. A file of the user's home: the user's own modes, also from a shared store's build
worker, and never writable by others.
"""

from __future__ import annotations

import os
from pathlib import Path

from .access import home_mkdir, home_mode


def register_conda_env(prefix: Path) -> None:
    """List the prefix in ~/.conda/environments.txt as conda does (conda env list finds it).

    A file of the user's home: the user's own modes, also from a shared store's build worker.
    """
    path = Path.home() / ".conda" / "environments.txt"
    try:
        lines = path.read_text().splitlines() if path.exists() else []
        if str(prefix) not in lines:
            home_mkdir(path.parent)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
                os.fchmod(fd, home_mode())  # exactly, whatever this process's umask
            except FileExistsError:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            with open(fd, "a") as f:
                _keep_home_mode(f.fileno())
                f.write(f"{prefix}\n")
    except OSError:
        pass


def unregister_conda_env(prefix: Path) -> None:
    path = Path.home() / ".conda" / "environments.txt"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return
    kept = [line for line in lines if line.strip() != str(prefix)]
    if kept != lines:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with open(fd, "w") as f:
            _keep_home_mode(f.fileno())
            f.write("".join(f"{line}\n" for line in kept))


def _keep_home_mode(fd: int) -> None:
    """Never writable by others (an older version made the file 0666 in shared builds)."""
    st = os.fstat(fd)
    if st.st_uid == os.geteuid() and st.st_mode & 0o022:
        os.fchmod(fd, st.st_mode & 0o7755)
