"""Small helpers shared by the tests: run builds, start kernels, look inside prefixes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from jupyter_env_manager.core.runner import run_foreground


@contextlib.contextmanager
def umask(mask: int):
    """This process's umask is ``mask`` for the block."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def build(service, scope: str, name: str, **kwargs):
    """Prepare and run a build to its end in the foreground; returns the finished Build."""
    b = service.builds.prepare(scope, name)
    return run_foreground(service, scope, name, b, **kwargs)


def run_in_kernel(kernel_name: str, code: str, timeout: float = 60) -> tuple[str, dict]:
    """Start the kernelspec for real, execute ``code``, return (stdout, reply content)."""
    km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=120)
    try:
        return execute(kc, code, timeout)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code: str, timeout: float = 60) -> tuple[str, dict]:
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return "".join(out), reply["content"]


def files_containing(root: Path, needle: str) -> list[str]:
    """Every regular file under ``root`` whose bytes contain ``needle``."""
    found = []
    data_needle = needle.encode()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_symlink():
                if needle in os.readlink(p):
                    found.append(str(p))
                continue
            try:
                if data_needle in p.read_bytes():
                    found.append(str(p))
            except OSError:
                continue
    return found


def get_when_up(server: subprocess.Popen, port: int, path: str, token: str) -> dict:
    """GET ``path`` of a server being started, as JSON, once it answers (the server must not
    exit meanwhile; a minute at most)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{path}", headers={"Authorization": f"token {token}"}
    )
    for _ in range(300):
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            assert server.poll() is None, f"the server exited ({server.returncode})"
            time.sleep(0.2)
    raise AssertionError(f"the server never answered GET /{path}")
