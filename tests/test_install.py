"""The installed package: server extension and prebuilt labextension enabled and OK."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from helpers import get_when_up

pytestmark = pytest.mark.skipif(
    not any(d.metadata["Name"] == "jupyter_env_manager" for d in metadata.distributions()),
    reason="jupyter_env_manager is not installed (pip install -e .)",
)


def jupyter(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # no colours


def test_server_extension_is_enabled_and_ok():
    out = jupyter("server", "extension", "list")
    assert re.search(r"jupyter_env_manager\s+enabled", out), out
    assert re.search(r"jupyter_env_manager\s+\S+\s+OK", out), out


def test_labextension_is_enabled_and_ok():
    from jupyter_env_manager import __version__

    out = jupyter("labextension", "list")
    line = next((li for li in out.splitlines() if "jupyter-env-manager" in li), "")
    assert "enabled" in line and "OK" in line, out
    assert f"v{__version__}" in line  # the frontend's version is the server's (package.json)


@pytest.mark.skipif(
    os.environ.get("ENVMGR_TEST_QUICKSTART") != "1",
    reason="installs from PyPI into a new virtualenv: ENVMGR_TEST_QUICKSTART=1 (CI sets it)",
)
def test_readme_quick_start_in_a_fresh_virtualenv(tmp_path):
    """The README's first command, `pip install . && jupyter lab --allow-root`, in a virtualenv
    that has nothing else: JupyterLab comes with the package and loads the extension."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The source tree as a clone has it, plus the labextension already built (so no JS build
    # here). An install.json in it comes from a development install (pip writes through the
    # `labextension develop` link): a clone has none.
    source = tmp_path / "source"
    shutil.copytree(
        Path(__file__).resolve().parents[1],
        source,
        ignore=shutil.ignore_patterns(".git", "node_modules", ".venv", "bench", "install.json"),
    )
    shutil.copy(Path(__file__).resolve().parents[1] / "install.json", source / "install.json")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        check=True,
        timeout=900,
    )
    assert (venv / "bin" / "jupyter-lab").exists()  # JupyterLab itself came with it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    lab = subprocess.Popen(
        [
            str(venv / "bin" / "jupyter"),
            "lab",
            "--allow-root",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=qs",
        ],  # fmt: skip
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info = get_when_up(lab, port, "env-manager/info", "qs")
        from jupyter_env_manager import __version__

        assert info["version"] == __version__
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=qs", timeout=30).read()
        assert b"jupyter-env-manager" in page  # the labextension is in the page's federated list
    finally:
        lab.terminate()
        lab.wait(timeout=30)
