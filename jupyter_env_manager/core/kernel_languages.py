"""Kernels for every language an environment ships: one kernelspec per kernel it installs.

A package such as ``r-irkernel`` installs ``share/jupyter/kernels/ir/kernel.json`` into the
environment; Jupyter never looks there (the prefix is not on its path). Each such kernel (other
than ipykernel's own ``python3``) gets a kernelspec of ours beside the environment's Python one:

- name: the environment's kernel name, a dot, the shipped kernel's name (``envmgr-stats.ir``,
  ``envmgr-shared-stats.ir``). Environment names never contain a dot, and the only dot in a
  Python kernel name is that of ``envmgr-local.shared-...``, always followed by ``shared-``:
  a shipped kernel whose name starts with ``shared-`` is written ``k-shared-...``;
- display name: the shipped one, the language and the environment (``R (ir) in stats``);
- started with the environment activated exactly as its Python kernel is: the same variables
  (PATH, CONDA_PREFIX, env_vars.d) and, when the environment has ``activate.d`` scripts, the
  same ``bash`` launcher in front of the shipped argv (see :mod:`.kernels`).

``R_LIBS``, ``R_LIBS_USER`` and ``R_LIBS_SITE`` are set to the environment's R library in every
kernel of an environment (see :func:`isolation_env`): R would otherwise add the user's home
library (``~/R/<platform>-library/<version>``) and the server's site libraries, so packages
installed outside the environment would leak into it.

A Python environment without ipykernel but with another kernel gets only that kernel's spec
(its Python kernelspec could not start).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from .access import home_mkdir, home_mode
from .store import write_json

SHIPPED_DIR = ("share", "jupyter", "kernels")
IPYKERNEL_NAMES = {"python3", "python2", "python"}  # what ipykernel installs: our main kernel
MAX_SHIPPED = 20
MAX_KERNEL_JSON = 64 * 1024
SHIPPED_NAME_RE = re.compile(r"[a-z0-9_-]{1,64}")
PINNED_SUFFIX_RE = re.compile(r"v[1-9][0-9]{0,8}")  # kernels.pinned_kernel_name's suffix
LOGO_RE = re.compile(r"logo-(32x32|64x64|svg)\.(png|svg)")
# Variables of the main kernelspec that only its Python needs (the magics' package).
PYTHON_ONLY = ("PYTHONPATH", "JUPYTER_ENV_MANAGER_PYTHON")
ACTIVATE_MARKER = "envmgr-activate"  # $0 of the bash launcher (kernels.kernelspec)


def isolation_env(prefix: Path) -> dict[str, str]:
    """Variables that keep a kernel to its environment's libraries (R's, for now)."""
    library = str(prefix / "lib" / "R" / "library")
    return {"R_LIBS": library, "R_LIBS_USER": library, "R_LIBS_SITE": library}


def _safe_name(raw: str) -> str | None:
    name = re.sub(r"[^a-z0-9_-]", "-", raw.lower())
    if name.startswith("shared-") or PINNED_SUFFIX_RE.fullmatch(name):
        name = "k-" + name  # never mistaken for a local "shared-" name or a pinned version
    return name if SHIPPED_NAME_RE.fullmatch(name) else None


def shipped_kernels(prefix: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """(directory, kernel.json) of each kernel the environment ships but ipykernel's, by our
    name for it; a kernel.json that is not a usable kernelspec is left out."""
    root = prefix.joinpath(*SHIPPED_DIR)
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.name.lower() in IPYKERNEL_NAMES or len(out) >= MAX_SHIPPED:
            continue
        name = _safe_name(entry.name)
        path = Path(entry.path) / "kernel.json"
        if name is None or name in out:
            continue
        try:
            if path.stat().st_size > MAX_KERNEL_JSON:
                continue
            spec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        argv = spec.get("argv") if isinstance(spec, dict) else None
        if not (
            isinstance(argv, list)
            and argv
            and all(isinstance(a, str) and "\0" not in a for a in argv)
        ):
            continue
        out[name] = (Path(entry.path), spec)
    return out


def has_ipykernel(prefix: Path) -> bool:
    return any(prefix.glob("lib/python3*/site-packages/ipykernel/__init__.py"))


def wants_python_kernel(prefix: Path) -> bool:
    """The environment's Python kernelspec is written unless the environment has no ipykernel
    and ships another kernel (then that kernel is the environment's)."""
    return has_ipykernel(prefix) or not shipped_kernels(prefix)


def extra_kernel_name(main: str, shipped: str) -> str:
    return f"{main}.{shipped}"


def split_extra(kname: str) -> tuple[str, str] | None:
    """(Python kernel name, shipped name) of one of our extra kernel names, else None."""
    main, dot, shipped = kname.rpartition(".")
    if not dot or shipped.startswith("shared-") or not SHIPPED_NAME_RE.fullmatch(shipped):
        return None
    if PINNED_SUFFIX_RE.fullmatch(shipped):  # envmgr-NAME.vN: a pinned version's kernel
        return None
    from .kernels import parse_kernel_name

    return (main, shipped) if parse_kernel_name(main) is not None else None


def extra_kernelspecs(
    main: dict[str, Any], prefix: Path, env_display: str
) -> dict[str, dict[str, Any]]:
    """Our kernelspec of each shipped kernel, by shipped name, derived from the environment's
    Python kernelspec ``main`` (its activation variables and launcher)."""
    env = {k: v for k, v in main["env"].items() if k not in PYTHON_ONLY}
    argv = list(main["argv"])
    # Our version launcher (core.launch, up to its "--"), then bash's activation if any.
    if ACTIVATE_MARKER in argv:
        launcher = argv[: argv.index(ACTIVATE_MARKER) + 1]
    elif "jupyter_env_manager.core.launch" in argv and "--" in argv:
        launcher = argv[: argv.index("--") + 1]
    else:
        launcher = []
    out = {}
    for shipped, (directory, spec) in shipped_kernels(prefix).items():
        language = str(spec.get("language") or shipped)
        display = str(spec.get("display_name") or shipped)
        shipped_env = spec.get("env")
        shipped_env = shipped_env if isinstance(shipped_env, dict) else {}
        shipped_meta = spec.get("metadata")
        shipped_meta = shipped_meta if isinstance(shipped_meta, dict) else {}
        out[shipped] = {
            "argv": [*launcher, *spec["argv"]],
            "display_name": f"{display} ({language}) in {env_display}",
            "language": language,
            "interrupt_mode": spec.get("interrupt_mode") or "signal",
            "env": {**env, **{str(k): str(v) for k, v in shipped_env.items()}},
            "metadata": {
                **shipped_meta,
                "env_manager": {**main["metadata"]["env_manager"], "kernel": shipped},
            },
        }
        out[shipped]["_resources"] = str(directory)
    return out


def write_extras(kernels_dir: Path, kname: str, specs: dict[str, dict[str, Any]]) -> list[str]:
    """Write the extra kernelspecs of the environment whose Python kernel is ``kname`` (with
    the shipped logos), and remove its extras that are no longer shipped."""
    written = []
    for shipped, spec in specs.items():
        spec = dict(spec)
        resources = Path(spec.pop("_resources"))
        directory = kernels_dir / extra_kernel_name(kname, shipped)
        home_mkdir(directory, top=kernels_dir)
        os.chmod(directory, home_mode(directory=True))
        write_json(directory / "kernel.json", spec, home_mode())
        for logo in resources.iterdir():
            if LOGO_RE.fullmatch(logo.name) and logo.is_file() and not logo.is_symlink():
                shutil.copyfile(logo, directory / logo.name)
                os.chmod(directory / logo.name, home_mode())
        written.append(directory.name)
    for stale in set(extras_of(kernels_dir, kname)) - set(written):
        shutil.rmtree(kernels_dir / stale, ignore_errors=True)
    return written


# A kernelspec folder's names by the part before their last dot (an extra's Python kernel),
# with the folder's mtime (see _extras_index).
_LISTINGS: dict[str, tuple[int, dict[str, list[str]]]] = {}
_LISTINGS_LOCK = threading.Lock()
RACY_NS = 2_000_000_000  # a folder changed this recently may change again within its mtime tick


def _extras_index(kernels_dir: Path) -> dict[str, list[str]]:
    """The names in a kernelspec folder by the part before their last dot, listed again only
    when the folder's mtime moved (an entry added or removed; a folder changed in the last 2 s
    is listed every time, as two changes in one clock tick leave one mtime). Checking thousands
    of environments' kernelspecs lists the folder of thousands once, not once each."""
    key = str(kernels_dir)
    try:
        mtime = os.stat(key).st_mtime_ns
    except OSError:
        return {}
    with _LISTINGS_LOCK:
        known = _LISTINGS.get(key)
    if known is not None and known[0] == mtime:
        return known[1]
    try:
        names = os.listdir(key)
    except OSError:
        return {}
    index: dict[str, list[str]] = {}
    for name in names:
        main, dot, _ = name.rpartition(".")
        if dot:
            index.setdefault(main, []).append(name)
    if time.time_ns() - mtime > RACY_NS:
        with _LISTINGS_LOCK:
            _LISTINGS[key] = (mtime, index)
    return index


def extras_of(kernels_dir: Path, kname: str) -> list[str]:
    """The extra kernelspecs installed for the environment whose Python kernel is ``kname``."""
    return [
        n
        for n in _extras_index(kernels_dir).get(kname, [])
        if (split_extra(n) or ("", ""))[0] == kname
    ]


def extras_current(kernels_dir: Path, kname: str, specs: dict[str, dict[str, Any]]) -> bool:
    """Whether exactly these extras are installed, as :func:`write_extras` writes them."""
    wanted = {extra_kernel_name(kname, shipped) for shipped in specs}
    if set(extras_of(kernels_dir, kname)) != wanted:
        return False
    for shipped, spec in specs.items():
        expected = {k: v for k, v in spec.items() if k != "_resources"}
        try:
            path = kernels_dir / extra_kernel_name(kname, shipped) / "kernel.json"
            if json.loads(path.read_text()) != expected:
                return False
        except (OSError, ValueError):
            return False
    return True


def remove_extras(kernels_dir: Path, kname: str) -> list[str]:
    removed = extras_of(kernels_dir, kname)
    for name in removed:
        shutil.rmtree(kernels_dir / name, ignore_errors=True)
    return removed
