"""Conda environments for Jupyter: built by py-rattler, kept under your home, shared with your team.

This module only holds the extension points; everything else is imported lazily so that
``import jupyter_env_manager`` stays cheap (the kernel launcher and the CLI rely on it).
Layout: ``core/`` (no web or IPython), ``server/`` (the REST door), ``cli/`` (``jupyter envmgr``
and ``%envmgr``), ``config.py`` (``c.EnvManager``), ``testing/`` (the local conda channel).
"""

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - running from a source tree that was never built
    import warnings

    warnings.warn("Importing 'jupyter_env_manager' outside a proper installation.", stacklevel=2)
    __version__ = "dev"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-env-manager"}]


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    from .server.app import EnvManagerExtension

    return [{"module": "jupyter_env_manager", "app": EnvManagerExtension}]


def load_ipython_extension(ipython) -> None:
    from .cli.magics import load_ipython_extension as _load

    _load(ipython)
