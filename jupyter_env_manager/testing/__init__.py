"""Test helpers: a local conda channel of real packages and a local wheelhouse, both offline.

Tests and benchmarks cannot reach a conda channel or PyPI, so they build their own:
:func:`~jupyter_env_manager.testing.channel.build_channel` writes real conda archives (a
``python`` that points at the host interpreter, an ``ipykernel`` made from the host's installed
files, and small packages for the error paths) and indexes them with py-rattler;
:func:`~jupyter_env_manager.testing.wheels.build_wheelhouse` writes real pure-python wheels.
Nothing here is imported by the extension itself.
"""

from .channel import PREFIX_PLACEHOLDER, PackageDef, build_channel, build_channel_async, synthetic
from .wheels import build_wheelhouse

__all__ = [
    "PREFIX_PLACEHOLDER",
    "PackageDef",
    "build_channel",
    "build_channel_async",
    "build_wheelhouse",
    "synthetic",
]
