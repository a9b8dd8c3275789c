"""Conda activation of a prefix, as a kernelspec needs it: the variables ``conda activate`` sets
(PATH aside) and the ``etc/conda/activate.d`` scripts to source, computed by rattler.

A re-sync checks thousands of environments, so an activation is remembered per prefix with a
stat fingerprint of everything it reads, and computed again only when that changed. A value a
kernelspec cannot carry (a NUL, a variable name bash would not accept) raises
:class:`.errors.KernelError` naming it.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import KernelError

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Activation:
    """What conda activation sets for a prefix: variables (PATH aside) and activate.d scripts."""

    env: dict[str, str] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)


# Activations by prefix, with the fingerprint of their inputs (see :func:`activation`).
_ACTIVATIONS: dict[str, tuple[tuple[Any, ...], Activation]] = {}
_ACTIVATIONS_LOCK = threading.Lock()
ACTIVATIONS_KEPT = 20_000  # prefixes whose activation is remembered (a few KB each)
# What rattler's activation reads, below the prefix: the state file (conda env config vars,
# inside conda-meta), and the two folders of activation scripts and variable files.
_ACTIVATION_INPUTS = ("conda-meta", "conda-meta/state")
_ACTIVATION_DIRS = ("etc/conda/activate.d", "etc/conda/env_vars.d")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def activation_inputs(prefix: Path) -> tuple[Any, ...]:
    """A stat fingerprint of everything :func:`activation` of ``prefix`` reads: conda-meta and
    its state file, the activate.d and env_vars.d folders and each file in them (a file
    rewritten in place changes its own mtime, not its folder's). A few ``stat`` calls."""
    base = str(prefix)
    parts: list[Any] = [_stamp(os.path.join(base, rel)) for rel in _ACTIVATION_INPUTS]
    for rel in _ACTIVATION_DIRS:
        directory = os.path.join(base, rel)
        stamp = _stamp(directory)
        parts.append(stamp)
        if stamp is None:
            continue
        try:
            with os.scandir(directory) as entries:
                names = sorted(e.name for e in entries)
        except OSError:
            names = []
        parts.extend((name, _stamp(os.path.join(directory, name))) for name in names)
    return tuple(parts)


def activation(prefix: Path) -> Activation:
    """Conda activation of ``prefix``; :class:`KernelError` if it cannot be turned into a
    kernelspec. Remembered per prefix and recomputed only when the stat fingerprint of its
    inputs (:func:`activation_inputs`) changed: a re-sync checks thousands of environments."""
    key = str(prefix)
    inputs = activation_inputs(prefix)
    with _ACTIVATIONS_LOCK:
        known = _ACTIVATIONS.get(key)
    if known is not None and known[0] == inputs:
        return Activation(dict(known[1].env), list(known[1].scripts))
    result = _compute_activation(prefix)
    if _settled(inputs):
        with _ACTIVATIONS_LOCK:
            if len(_ACTIVATIONS) >= ACTIVATIONS_KEPT:
                _ACTIVATIONS.clear()  # rare (that many prefixes): start again, no ages kept
            _ACTIVATIONS[key] = (inputs, result)
    return Activation(dict(result.env), list(result.scripts))


def _settled(inputs: tuple[Any, ...]) -> bool:
    """Whether no input changed in the last 2 s: a file changed twice within one tick of the
    clock (same size) would keep its stat, so a fresh one is not remembered."""
    now, newest = time.time_ns(), 0
    for part in inputs:
        stamp = part[1] if part and isinstance(part[0], str) else part
        if stamp is not None:
            newest = max(newest, stamp[1])
    return now - newest > 2_000_000_000


def _compute_activation(prefix: Path) -> Activation:
    """Conda activation of ``prefix``, computed by rattler (~0.5 ms)."""
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

    try:
        script = activate(
            prefix,
            ActivationVariables(None, [], PathModificationBehavior.Prepend),
            Shell.bash,
        ).script
    except Exception as err:  # rattler's ActivationError: a malformed state or env_vars file
        raise KernelError(f"its activation failed: {err}") from None
    # rattler quotes values for bash (a value may span lines): read the script as one stream.
    lexer = shlex.shlex(script, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError as err:
        raise KernelError(f"its activation script cannot be read: {err}") from None
    result = Activation()
    i = 0
    while i < len(words) - 1:
        word, arg = words[i], words[i + 1]
        if word == "export":
            key, equals, value = arg.partition("=")
            if not equals or not ENV_NAME_RE.fullmatch(key):
                raise KernelError(f"activation variable {key!r} is not a valid variable name")
            if "\0" in value:
                raise KernelError(f"activation variable {key} contains a NUL character")
            if key != "PATH":
                result.env[key] = value
            i += 2
        elif word in (".", "source"):
            result.scripts.append(arg)
            i += 2
        else:
            i += 1
    return result
