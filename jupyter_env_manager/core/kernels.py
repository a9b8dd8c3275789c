"""Kernelspecs for environments: their names, and writing, checking and removing them.

A kernel starts with its environment activated as ``conda activate`` would: PATH, CONDA_PREFIX
and ``etc/conda/env_vars.d`` go into the kernelspec's ``env`` (computed by rattler) for the
directory of the version in use. argv starts with our launcher (:mod:`.launch`), which moves a
starting kernel to the version in use at that moment (and records it as live) before it
``exec``-s the rest. Only when an environment has ``etc/conda/activate.d`` scripts, the rest
starts with ``bash`` sourcing them and then ``exec``-ing the kernel: every step replaces itself,
so the process Jupyter signals is the kernel and interrupt/restart behave as for a plain
kernelspec.

Values arrive literally, as conda's activation keeps them: jupyter_client expands ``$NAME`` in a
kernelspec's env, so every ``$`` of ours is written ``$$`` (only PATH keeps its ``${PATH}``).
One environment's activation that cannot be turned into a kernelspec raises
:class:`.errors.KernelError` naming it; callers report it for that environment and go on.

Kernel names are one-to-one with (scope, name): ``envmgr-NAME`` for the local store,
``envmgr-shared-NAME`` for the shared one, and ``envmgr-local.NAME`` for a local name that
starts with ``shared-`` (environment names never contain a dot; kernel names may).

Activation itself is :mod:`.activation`; this user's kernelspecs as a whole (activate,
deactivate, re-sync) are :mod:`.kernel_sync`.

Everything here is written in the user's home with the user's own modes (see
:func:`.access.home_mode`), also from a build worker of the shared store.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir

from .access import home_mkdir, home_mode
from .activation import activation
from .errors import KernelError
from .kernel_languages import (
    extra_kernelspecs,
    extras_current,
    isolation_env,
    remove_extras,
    wants_python_kernel,
    write_extras,
)
from .records import write_json
from .spec import NAME_RE

KERNEL_PREFIX = "envmgr-"
SHARED = "shared-"
LOCAL_DOTTED = "local."  # a local name that starts with "shared-"
# The package linked into each kernelspec for the magics (``pylib/jupyter_env_manager``).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
PYLIB = "pylib"
ACTIVATE_TEMPLATE = '__envmgr_cmd=("$@"); {sources} exec "${{__envmgr_cmd[@]}}"'


def kernel_name(scope: str, name: str) -> str:
    """The kernelspec name of an environment, one-to-one across scopes."""
    if scope == "shared":
        return f"{KERNEL_PREFIX}{SHARED}{name}"
    if name.startswith(SHARED):
        return f"{KERNEL_PREFIX}{LOCAL_DOTTED}{name}"
    return f"{KERNEL_PREFIX}{name}"


def pinned_kernel_name(scope: str, name: str, version: int) -> str:
    """The kernelspec of a pinned version: ``envmgr-NAME.vN`` (names never contain a dot)."""
    return f"{kernel_name(scope, name)}.v{version}"


def parse_pinned_kernel_name(kernel: str) -> tuple[str, str, int] | None:
    """(scope, name, version) of a pinned kernel name, exactly inverting the above."""
    base, dot, version = kernel.rpartition(".v")
    if not dot or not re.fullmatch(r"[1-9][0-9]{0,8}", version):
        return None
    parsed = parse_kernel_name(base)
    if parsed is None or pinned_kernel_name(*parsed, int(version)) != kernel:
        return None
    return parsed[0], parsed[1], int(version)


def parse_kernel_name(kernel: str) -> tuple[str, str] | None:
    """(scope, name) of one of our kernel names, exactly inverting :func:`kernel_name`;
    None for any other name."""
    if not kernel.startswith(KERNEL_PREFIX):
        return None
    rest = kernel[len(KERNEL_PREFIX) :]
    if rest.startswith(SHARED):
        scope, name = "shared", rest[len(SHARED) :]
    elif rest.startswith(LOCAL_DOTTED):
        scope, name = "local", rest[len(LOCAL_DOTTED) :]
    else:
        scope, name = "local", rest
    if not NAME_RE.fullmatch(name) or kernel_name(scope, name) != kernel:
        return None
    return scope, name


def kernels_dir(top: Path | None = None) -> Path:
    """Where this user's kernelspecs go: ``top`` when given (a server fixes its own at start,
    :class:`Kernels`), else Jupyter's data directory as the process's environment says now."""
    return top if top is not None else Path(jupyter_data_dir()) / "kernels"


def literal(value: str) -> str:
    """A kernelspec env value that reaches the kernel as is (jupyter_client expands ``$``)."""
    return value.replace("$", "$$")


def kernelspec(
    scope: str,
    name: str,
    prefix: Path,
    display_name: str,
    version: int | None,
    root: Path | None = None,
    pinned: bool = False,
    top: Path | None = None,
) -> dict[str, Any]:
    """The kernelspec of an environment whose version in use lives in ``prefix``.

    With the store's ``root``, argv starts with our launcher (:mod:`.launch`), which moves a
    starting kernel to the version in use at that moment and records it as live; ``pinned``:
    to version ``version`` always (a pinned notebook's kernel)."""
    act = activation(prefix)
    env = dict(act.env)
    env.update(
        {
            "CONDA_PREFIX": str(prefix),
            "CONDA_DEFAULT_ENV": name,
            "CONDA_SHLVL": "1",
            "CONDA_PROMPT_MODIFIER": f"({name}) ",
            # The Python that runs the manager, for %envmgr in this kernel (see magics.py).
            "JUPYTER_ENV_MANAGER_PYTHON": sys.executable,
            # Only this package (its light modules need nothing but IPython), so that
            # `%load_ext jupyter_env_manager` works in the kernel; no host package leaks in.
            "PYTHONPATH": str(
                kernels_dir(top)
                / (
                    pinned_kernel_name(scope, name, version)
                    if pinned and version
                    else kernel_name(scope, name)
                )
                / PYLIB
            ),
            **isolation_env(prefix),  # R's libraries: the environment's only
        }
    )
    if scope == "shared":
        # Bytecode goes to this user's cache, never into the team's version directory (a
        # __pycache__ made with this user's umask would be one no teammate can remove).
        env["PYTHONPYCACHEPREFIX"] = str(Path.home() / ".cache" / "jupyter-env-manager" / "pycache")
    env = {key: literal(value) for key, value in env.items()}
    # The one value jupyter_client expands on purpose: the kernel's PATH extends the server's.
    env["PATH"] = f"{literal(str(prefix / 'bin'))}{os.pathsep}${{PATH}}"
    python = str(prefix / "bin" / "python")
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    bash = shutil.which("bash")
    if act.scripts and bash:
        sources = " ".join(f". {shlex.quote(s)} </dev/null;" for s in act.scripts)
        argv = [
            bash,
            "--noprofile",
            "--norc",
            "-c",
            ACTIVATE_TEMPLATE.format(sources=sources),
            "envmgr-activate",
            *argv,
        ]
    if root is not None:
        argv = [
            sys.executable,
            "-m",
            "jupyter_env_manager.core.launch",
            "--root",
            str(root),
            "--scope",
            scope,
            "--name",
            name,
            "--built-for",
            str(prefix),
            *(["--version", str(version)] if pinned and version else []),
            "--",
            *argv,
        ]
    return {
        "argv": argv,
        "display_name": display_name if scope == "local" or pinned else f"{display_name} (shared)",
        "language": "python",
        "interrupt_mode": "signal",
        "env": env,
        "metadata": {
            "debugger": True,
            "env_manager": {"scope": scope, "name": name, "version": version}
            | ({"pinned": True} if pinned else {}),
        },
    }


def write_kernelspec(
    scope: str,
    name: str,
    prefix: Path,
    display_name: str,
    version: int | None,
    root: Path | None = None,
    top: Path | None = None,
) -> str:
    """Write (or replace) the environment's kernelspec in ``top`` (see :func:`kernels_dir`);
    :class:`KernelError` names the reason when this environment's cannot be written (nothing
    of another environment is touched)."""
    kname = kernel_name(scope, name)
    top = kernels_dir(top)
    try:
        spec = kernelspec(scope, name, prefix, display_name, version, root, top=top)
    except KernelError as err:
        raise KernelError(
            f"The kernel of {scope}/{name} cannot be written: {err.message}", item=name
        ) from None
    directory = top / kname
    # The kernels the environment ships (R, Julia ...): one kernelspec each, beside this one.
    extras = extra_kernelspecs(spec, prefix, spec["display_name"])
    python_kernel = wants_python_kernel(prefix)
    try:
        if python_kernel:
            _link_package(directory / PYLIB, top)
            # Not fsynced (a build's last step paid ~5-20 ms for it): a kernelspec is derived
            # from the store, and one a machine crash left empty reads as absent, which the
            # next sync (the server's start, its watcher) writes again.
            write_json(directory / "kernel.json", spec, home_mode(), durable=False)
        else:  # no ipykernel, another kernel: that one is the environment's
            remove_kernel(kname, top)
        written = write_extras(top, kname, extras)
    except OSError as err:
        raise KernelError(
            f"The kernel of {scope}/{name} cannot be written in {directory}: {err.strerror}",
            item=name,
        ) from None
    return kname if python_kernel or not written else written[0]


def write_pinned_kernelspec(
    scope: str,
    name: str,
    prefix: Path,
    display_name: str,
    version: int,
    root: Path,
    top: Path | None = None,
) -> str:
    """Write the kernelspec of a pinned version (``prefix``: that version's directory)."""
    kname = pinned_kernel_name(scope, name, version)
    top = kernels_dir(top)
    try:
        spec = kernelspec(scope, name, prefix, display_name, version, root, pinned=True, top=top)
    except KernelError as err:
        raise KernelError(
            f"The kernel of {scope}/{name} v{version} cannot be written: {err.message}", item=name
        ) from None
    directory = top / kname
    try:
        _link_package(directory / PYLIB, top)
        write_json(directory / "kernel.json", spec, home_mode())
    except OSError as err:
        raise KernelError(
            f"The kernel of {scope}/{name} v{version} cannot be written in {directory}: "
            f"{err.strerror}",
            item=name,
        ) from None
    return kname


def is_current(
    scope: str,
    name: str,
    prefix: Path,
    display_name: str,
    version: int | None,
    root: Path | None = None,
    top: Path | None = None,
) -> bool:
    """Whether the installed kernelspec is exactly what :func:`write_kernelspec` would write,
    with the user's modes."""
    top = kernels_dir(top)
    directory = top / kernel_name(scope, name)
    link = directory / PYLIB / "jupyter_env_manager"
    python_kernel = wants_python_kernel(prefix)
    if python_kernel:
        try:
            modes = {os.stat(p).st_mode & 0o7777 for p in (directory, directory / PYLIB)}
            if modes != {home_mode(directory=True)}:
                return False
            if os.stat(directory / "kernel.json").st_mode & 0o7777 != home_mode():
                return False
        except OSError:
            return False
        if link.resolve() != PACKAGE_DIR:
            return False
    elif directory.exists():
        return False
    try:
        main = kernelspec(scope, name, prefix, display_name, version, root, top=top)
    except KernelError:
        return False
    if python_kernel and read_kernelspec(scope, name, top) != main:
        return False
    extras = extra_kernelspecs(main, prefix, main["display_name"])
    return extras_current(top, directory.name, extras)


def _link_package(pylib: Path, top: Path) -> None:
    home_mkdir(pylib, top=top)
    for directory in (pylib.parent, pylib):  # ours: exactly the user's modes, also when it existed
        os.chmod(directory, home_mode(directory=True))
    link = pylib / "jupyter_env_manager"
    target = PACKAGE_DIR
    if link.is_symlink() and link.resolve() == target:
        return
    tmp = pylib / ".jupyter_env_manager.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


def remove_kernelspec(scope: str, name: str, top: Path | None = None) -> bool:
    """Remove the environment's kernelspecs: its Python one and those of the kernels it ships."""
    extras = remove_extras(kernels_dir(top), kernel_name(scope, name))
    return remove_kernel(kernel_name(scope, name), top) or bool(extras)


def remove_kernel(kname: str, top: Path | None = None) -> bool:
    """Remove one of our kernelspecs by its name."""
    directory = kernels_dir(top) / kname
    if kname.startswith(KERNEL_PREFIX) and directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        return True
    return False


def read_kernelspec(scope: str, name: str, top: Path | None = None) -> dict[str, Any] | None:
    path = kernels_dir(top) / kernel_name(scope, name) / "kernel.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def installed(top: Path | None = None) -> set[str]:
    try:
        return {
            e.name
            for e in os.scandir(kernels_dir(top))
            if e.name.startswith(KERNEL_PREFIX)
            and os.path.exists(os.path.join(e.path, "kernel.json"))
        }
    except FileNotFoundError:
        return set()
