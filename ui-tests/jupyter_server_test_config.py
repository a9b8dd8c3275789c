"""Jupyter Server configuration for the Galata (Playwright) tests.

Never use it outside tests: galata's helper removes every security protection.
The environment manager gets throw-away stores under ENVMGR_UI_ROOT (a fresh
temporary directory if unset), and its channels from ENVMGR_TEST_CHANNEL when set
(e.g. the output of ``python -m jupyter_env_manager.testing.channel DIR``).
"""

import os
import tempfile
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 - `c` is provided by the config loader
c.ServerApp.allow_root = True  # noqa: F821

root = Path(os.environ.get("ENVMGR_UI_ROOT") or tempfile.mkdtemp(prefix="envmgr-ui-"))
for sub in ("local", "shared", "pkgs", "jupyter-data"):
    (root / sub).mkdir(parents=True, exist_ok=True)

c.EnvManager.local_root = str(root / "local")  # noqa: F821
c.EnvManager.shared_root = str(root / "shared")  # noqa: F821
c.EnvManager.pkgs_dir = str(root / "pkgs")  # noqa: F821
channel = os.environ.get("ENVMGR_TEST_CHANNEL")
if channel:
    c.EnvManager.channels = [channel]  # noqa: F821

# Kernelspecs the tests activate go to a throw-away data dir, not ~/.local.
os.environ["JUPYTER_DATA_DIR"] = str(root / "jupyter-data")
