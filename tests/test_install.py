"""The installed package: server extension and prebuilt labextension enabled and OK."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

import pytest

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
