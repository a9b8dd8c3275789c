"""The command-line doors: ``jupyter envmgr`` and ``%envmgr`` share one parser and dispatch.

Standard library only at import time: the magics import this package inside kernels whose
environment lacks the core's dependencies.
"""

from .commands import main

__all__ = ["main"]
