"""Jupyter Server configuration for the Galata (Playwright) tests.

Never use it outside tests: galata's helper removes every security protection.
The environment manager gets throw-away stores under ENVMGR_UI_ROOT (a fresh
temporary directory if unset). Its conda channel is ENVMGR_TEST_CHANNEL when set,
else a local test channel written here (``jupyter_env_manager.testing.channel``);
the pip layer installs only from a local wheelhouse written here
(``jupyter_env_manager.testing.wheels``). Nothing is downloaded.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

from jupyter_env_manager.testing.channel import build_channel
from jupyter_env_manager.testing.wheels import build_wheelhouse

configure_jupyter_server(c)  # noqa: F821 - `c` is provided by the config loader
c.ServerApp.allow_root = True  # noqa: F821

root = Path(os.environ.get("ENVMGR_UI_ROOT") or tempfile.mkdtemp(prefix="envmgr-ui-"))
for sub in ("local", "shared", "pkgs", "jupyter-data"):
    (root / sub).mkdir(parents=True, exist_ok=True)

c.EnvManager.local_root = str(root / "local")  # noqa: F821
c.EnvManager.shared_root = str(root / "shared")  # noqa: F821
c.EnvManager.pkgs_dir = str(root / "pkgs")  # noqa: F821
c.EnvManager.channels = [  # noqa: F821
    os.environ.get("ENVMGR_TEST_CHANNEL") or build_channel(root / "channel")
]
c.EnvManager.pip_find_links = [str(build_wheelhouse(root / "wheelhouse"))]  # noqa: F821
c.EnvManager.pip_no_index = True  # noqa: F821
# The test channel's python is the host interpreter.
c.EnvManager.default_python = f"{sys.version_info.major}.{sys.version_info.minor}"  # noqa: F821
# Changes made on disk (by the tests) reach the panel quickly.
c.EnvManager.watch_interval_s = 0.5  # noqa: F821

# Kernelspecs the tests activate go to a throw-away data dir, not ~/.local.
os.environ["JUPYTER_DATA_DIR"] = str(root / "jupyter-data")
# Builds register their prefixes in ~/.conda/environments.txt as conda does: a throw-away home.
(root / "home").mkdir(exist_ok=True)
os.environ["HOME"] = str(root / "home")

# A kernel's %envmgr runs the core in a process of its own, which reads the config files the
# server would (not this --config file): give it the same stores and channels, through a
# throw-away config dir its kernels inherit.
(root / "jupyter-config").mkdir(exist_ok=True)
(root / "jupyter-config" / "jupyter_server_config.json").write_text(
    json.dumps({"EnvManager": dict(c.EnvManager)})  # noqa: F821
)
os.environ["JUPYTER_CONFIG_DIR"] = str(root / "jupyter-config")
