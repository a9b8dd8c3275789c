"""Shared fixtures: a real local conda channel, a wheelhouse, and an isolated Jupyter setup.

Session-wide (built once): ``test_channel`` (file:// URL), ``wheelhouse`` (Path), ``pkgs_cache``
(Path of the package cache every build shares, so installs after the first are warm).
Per test: ``envmgr_settings`` (the ``EnvManager`` dict), ``envmgr_config`` (a traitlets Config
with it) and ``jp_server_config`` (the server with the extension enabled).

Every test runs under pytest-jupyter's ``jp_environ``: HOME, JUPYTER_DATA_DIR, JUPYTER_CONFIG_DIR
and JUPYTER_RUNTIME_DIR point into the test's tmp_path, so kernelspecs written by the extension
never reach the real ``~/.local/share/jupyter``. jp_environ owns these names under tmp_path:
home, data, config, runtime, share, etc, env, root_dir; give test directories other names.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata
from pathlib import Path

import pytest
from jupyter_core.paths import jupyter_data_dir
from traitlets.config import Config

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def _installed() -> bool:
    try:
        metadata.distribution("jupyter_env_manager")
    except metadata.PackageNotFoundError:
        return False
    return True


if not _installed():  # running from a source tree (no `pip install -e .`)
    sys.path.insert(0, str(SOURCE_ROOT))

from jupyter_env_manager.testing.channel import build_channel, default_cache_dir  # noqa: E402
from jupyter_env_manager.testing.wheels import build_wheelhouse  # noqa: E402

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# Resolved at import, before any test moves HOME: the collected ipykernel archive is cached
# here across test sessions (set JUPYTER_ENV_MANAGER_TESTING_CACHE to move it).
HOST_PACKAGES_CACHE = default_cache_dir()
REAL_KERNELS_DIR = Path(jupyter_data_dir()) / "kernels"
HOST_PYTHON_XY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="session")
def test_channel(tmp_path_factory) -> str:
    """file:// URL of the local channel: python, ipykernel, pip and the small test packages."""
    return build_channel(tmp_path_factory.mktemp("channel"), cache_dir=HOST_PACKAGES_CACHE)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """Directory of the test wheels (envmgr-hello 1.0/2.0, envmgr-dep, envmgr-uses-dep)."""
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def pkgs_cache(tmp_path_factory) -> Path:
    """Package cache shared by every build of the session."""
    return tmp_path_factory.mktemp("pkgs")


@pytest.fixture(scope="session", autouse=True)
def _guard_real_kernels_dir():
    """Fail the session if anything wrote into the real user's kernelspec directory."""
    before = set(os.listdir(REAL_KERNELS_DIR)) if REAL_KERNELS_DIR.is_dir() else set()
    yield
    after = set(os.listdir(REAL_KERNELS_DIR)) if REAL_KERNELS_DIR.is_dir() else set()
    assert after == before, f"tests changed {REAL_KERNELS_DIR}: {sorted(after ^ before)}"


@pytest.fixture(autouse=True)
def _isolated_environment(jp_environ, monkeypatch):
    """pytest-jupyter's temporary HOME and Jupyter dirs, plus what it does not cover.

    jp_environ exports PYTHONPATH = the test runner's sys.path, which would leak the host's
    site-packages into every environment's interpreter (an env lacking ipykernel would still
    import it). Keep only this source tree, and only when the package is not installed.
    """
    if _installed():
        monkeypatch.delenv("PYTHONPATH", raising=False)
    else:
        monkeypatch.setenv("PYTHONPATH", str(SOURCE_ROOT))
    for name in ("JUPYTER_PATH", "CONDARC", "CONDA_PREFIX", "JUPYTER_ENV_MANAGER_SHARED_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return jp_environ


@pytest.fixture
def envmgr_settings(tmp_path, test_channel, pkgs_cache, wheelhouse) -> dict:
    """The ``EnvManager`` settings of one test: its own local and shared roots."""
    return {
        "local_root": str(tmp_path / "local-envs"),
        "shared_root": str(tmp_path / "shared-envs"),
        "channels": [test_channel],
        "pkgs_dir": str(pkgs_cache),
        "pip_find_links": [str(wheelhouse)],
        "pip_no_index": True,
        "default_python": HOST_PYTHON_XY,
    }


@pytest.fixture
def envmgr_config(envmgr_settings) -> Config:
    """A traitlets Config with ``c.EnvManager.*`` set for the test channel and wheelhouse."""
    return Config({"EnvManager": envmgr_settings})


@pytest.fixture
def jp_server_config(envmgr_settings) -> Config:
    """pytest-jupyter's server config: the extension enabled, authentication required."""
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_env_manager": True},
                "allow_unauthenticated_access": False,
            },
            "EnvManager": envmgr_settings,
        }
    )


@pytest.fixture
def jp_serverapp(jp_serverapp, jp_asyncio_loop):
    """pytest-jupyter's server, started as `jupyter server` starts it: the extensions' start
    hooks run (recovery, kernel sync, the watcher), and their stop hooks at teardown."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    extension = jp_serverapp.extension_manager.extension_apps["jupyter_env_manager"]
    startup = next(iter(extension)).startup
    if startup is not None:
        jp_asyncio_loop.run_until_complete(startup)
    return jp_serverapp


@pytest.fixture
def config_file(envmgr_settings) -> Path:
    """The test's EnvManager settings where load_config() (CLI, magics) finds them."""
    path = Path(os.environ["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"EnvManager": envmgr_settings}))
    return path


@pytest.fixture
def service(config_file, envmgr_config):
    """The core facade, configured like the server, the CLI and the magics of the test."""
    from jupyter_env_manager.config import EnvManager
    from jupyter_env_manager.core.service import EnvService

    return EnvService(EnvManager(config=envmgr_config))
