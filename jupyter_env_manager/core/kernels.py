"""Kernelspecs for environments: activation, writing, removing and re-syncing them.

A kernel starts with its environment activated as ``conda activate`` would: PATH, CONDA_PREFIX
and ``etc/conda/env_vars.d`` go into the kernelspec's ``env`` (computed by rattler). Only when an
environment has ``etc/conda/activate.d`` scripts, argv starts with ``bash`` sourcing them and
then ``exec``-ing the kernel: the shell replaces itself, so the process Jupyter signals is the
kernel itself and interrupt/restart behave exactly as for a plain kernelspec.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import jupyter_data_dir

from .errors import NotFound, ValidationError
from .spec import validate_name
from .store import Store, read_json, write_json

if TYPE_CHECKING:
    from .service import EnvService

KERNEL_PREFIX = "envmgr-"
# The package linked into each kernelspec for the magics (``pylib/jupyter_env_manager``).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
PYLIB = "pylib"
ACTIVATE_TEMPLATE = '__envmgr_cmd=("$@"); {sources} exec "${{__envmgr_cmd[@]}}"'


def kernel_name(scope: str, name: str) -> str:
    return f"{KERNEL_PREFIX}{name}" if scope == "local" else f"{KERNEL_PREFIX}shared-{name}"


def parse_kernel_name(kernel: str) -> tuple[str, str] | None:
    if not kernel.startswith(KERNEL_PREFIX):
        return None
    rest = kernel[len(KERNEL_PREFIX) :]
    if rest.startswith("shared-"):
        return "shared", rest[len("shared-") :]
    return "local", rest


def kernels_dir() -> Path:
    return Path(jupyter_data_dir()) / "kernels"


def activation(prefix: Path) -> tuple[dict[str, str], list[str]]:
    """Variables conda activation sets for ``prefix`` (PATH aside) and activate.d scripts."""
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

    result = activate(
        prefix,
        ActivationVariables(None, [], PathModificationBehavior.Prepend),
        Shell.bash,
    )
    env: dict[str, str] = {}
    scripts: list[str] = []
    for line in result.script.splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            parts = shlex.split(value) if value else [""]
            if key and key != "PATH":
                env[key] = parts[0] if parts else ""
        elif line.startswith(". "):
            scripts.append(shlex.split(line[2:])[0])
    return env, scripts


def kernelspec(
    scope: str, name: str, prefix: Path, display_name: str, version: int | None
) -> dict[str, Any]:
    env, scripts = activation(prefix)
    env.update(
        {
            "PATH": f"{prefix / 'bin'}{os.pathsep}${{PATH}}",
            "CONDA_PREFIX": str(prefix),
            "CONDA_DEFAULT_ENV": name,
            "CONDA_SHLVL": "1",
            "CONDA_PROMPT_MODIFIER": f"({name}) ",
            # The Python that runs the manager, for %envmgr in this kernel (see magics.py).
            "JUPYTER_ENV_MANAGER_PYTHON": sys.executable,
            # Only this package (its light modules need nothing but IPython), so that
            # `%load_ext jupyter_env_manager` works in the kernel; no host package leaks in.
            "PYTHONPATH": str(kernels_dir() / kernel_name(scope, name) / PYLIB),
        }
    )
    python = str(prefix / "bin" / "python")
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    bash = shutil.which("bash")
    if scripts and bash:
        sources = " ".join(f". {shlex.quote(s)} </dev/null;" for s in scripts)
        argv = [
            bash,
            "--noprofile",
            "--norc",
            "-c",
            ACTIVATE_TEMPLATE.format(sources=sources),
            "envmgr-activate",
            *argv,
        ]
    return {
        "argv": argv,
        "display_name": display_name if scope == "local" else f"{display_name} (shared)",
        "language": "python",
        "interrupt_mode": "signal",
        "env": env,
        "metadata": {
            "debugger": True,
            "env_manager": {"scope": scope, "name": name, "version": version},
        },
    }


def write_kernelspec(
    scope: str, name: str, prefix: Path, display_name: str, version: int | None
) -> str:
    kname = kernel_name(scope, name)
    directory = kernels_dir() / kname
    _link_package(directory / PYLIB)
    write_json(directory / "kernel.json", kernelspec(scope, name, prefix, display_name, version))
    return kname


def is_current(scope: str, name: str, prefix: Path, display_name: str, version: int | None) -> bool:
    """Whether the installed kernelspec is exactly what :func:`write_kernelspec` would write."""
    link = kernels_dir() / kernel_name(scope, name) / PYLIB / "jupyter_env_manager"
    return link.resolve() == PACKAGE_DIR and read_kernelspec(scope, name) == kernelspec(
        scope, name, prefix, display_name, version
    )


def _link_package(pylib: Path) -> None:
    pylib.mkdir(parents=True, exist_ok=True)
    link = pylib / "jupyter_env_manager"
    target = PACKAGE_DIR
    if link.is_symlink() and link.resolve() == target:
        return
    tmp = pylib / ".jupyter_env_manager.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


def remove_kernelspec(scope: str, name: str) -> bool:
    directory = kernels_dir() / kernel_name(scope, name)
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        return True
    return False


def read_kernelspec(scope: str, name: str) -> dict[str, Any] | None:
    try:
        return json.loads((kernels_dir() / kernel_name(scope, name) / "kernel.json").read_text())
    except (OSError, ValueError):
        return None


def installed() -> set[str]:
    try:
        return {
            e.name
            for e in os.scandir(kernels_dir())
            if e.name.startswith(KERNEL_PREFIX)
            and os.path.exists(os.path.join(e.path, "kernel.json"))
        }
    except FileNotFoundError:
        return set()


class Kernels:
    """The kernel part of the facade: which environments have a kernelspec, for this user.

    What the user turned on or off (an opt-out of a managed environment, an opt-in of one made
    by conda) is kept per user in the local store's ``kernels.json``, never in a shared store.
    """

    def __init__(self, service: EnvService):
        self.svc = service

    @property
    def _intents_path(self) -> Path:
        return self.svc.local.meta / "kernels.json"

    def _intents(self) -> dict[str, bool]:
        return read_json(self._intents_path, {}) or {}

    def _set_intent(self, scope: str, name: str, active: bool | None) -> None:
        self.svc.local.ensure()
        intents = self._intents()
        if active is None:
            intents.pop(f"{scope}/{name}", None)
        else:
            intents[f"{scope}/{name}"] = active
        write_json(self._intents_path, intents)

    def wanted(self, scope: str, name: str, managed: bool = True, intents=None) -> bool:
        intents = self._intents() if intents is None else intents
        return intents.get(f"{scope}/{name}", managed)

    @staticmethod
    def installed() -> set[str]:
        return installed()

    def activate(self, scope: str, name: str, actor: str | None = None) -> dict[str, Any]:
        svc = self.svc
        store = svc.store(scope)
        validate_name(name)
        if store.exists(name):
            version = store.active_version(name)
            if not version:
                raise ValidationError(
                    f"Environment {name!r} has no built version yet: build it first",
                    field="name",
                    item=name,
                )
            display = store.read_env(name).spec.display_name or name
        elif name in store.unmanaged_names():
            version, display = None, name
        else:
            raise NotFound(f"No environment {name!r} in the {scope} store")
        kname = write_kernelspec(scope, name, store.prefix(name), display, version)
        self._set_intent(scope, name, True)
        svc.emit(
            "kernel", {"action": "activated", "scope": scope, "name": name, "kernel_name": kname}
        )
        return svc.envs.get(scope, name, versions=False)

    def deactivate(self, scope: str, name: str, actor: str | None = None) -> dict[str, Any]:
        svc = self.svc
        view = svc.envs.get(scope, name, versions=False)
        remove_kernelspec(scope, name)
        self._set_intent(scope, name, False if view["managed"] else None)
        svc.emit(
            "kernel",
            {
                "action": "deactivated",
                "scope": scope,
                "name": name,
                "kernel_name": kernel_name(scope, name),
            },
        )
        return svc.envs.get(scope, name, versions=False)

    def forget(self, scope: str, name: str) -> None:
        """An environment is being deleted: its kernelspec and the user's intent go."""
        remove_kernelspec(scope, name)
        self._set_intent(scope, name, None)

    def sync(self) -> dict[str, list[str]]:
        """Re-create missing kernelspecs of active environments; remove orphaned ones."""
        intents = self._intents()
        present = installed()
        want: dict[str, tuple[Store, str, int | None, str]] = {}
        for store in self.svc.stores():
            managed = store.managed_names()
            for name in managed:
                version = store.active_version(name)
                if version and self.wanted(store.scope, name, True, intents):
                    try:
                        display = store.read_env(name).spec.display_name or name
                    except NotFound:
                        continue
                    want[kernel_name(store.scope, name)] = (store, name, version, display)
            for name in store.unmanaged_names(set(managed)):
                if self.wanted(store.scope, name, False, intents):
                    want[kernel_name(store.scope, name)] = (store, name, None, name)
        created: list[str] = []
        updated: list[str] = []
        removed: list[str] = []
        for kname, (store, name, version, display) in want.items():
            prefix = store.prefix(name)
            if kname in present and is_current(store.scope, name, prefix, display, version):
                continue
            write_kernelspec(store.scope, name, prefix, display, version)
            (updated if kname in present else created).append(kname)
        for kname in present - set(want):
            parsed = parse_kernel_name(kname)
            if parsed:
                remove_kernelspec(*parsed)
                removed.append(kname)
        return {"created": created, "updated": updated, "removed": removed}
