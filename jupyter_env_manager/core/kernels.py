"""Kernelspecs for environments: activation, writing, removing and re-syncing them.

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
:class:`KernelError` naming it; callers report it for that environment and go on.

Kernel names are one-to-one with (scope, name): ``envmgr-NAME`` for the local store,
``envmgr-shared-NAME`` for the shared one, and ``envmgr-local.NAME`` for a local name that
starts with ``shared-`` (environment names never contain a dot; kernel names may).

Everything here is written in the user's home with the user's own modes (see
:func:`.access.home_mode`), also from a build worker of the shared store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import jupyter_data_dir

from .access import home_mkdir, home_mode
from .errors import Conflict, EnvManagerError, NotFound, ValidationError
from .kernel_languages import (
    extra_kernelspecs,
    extras_current,
    extras_of,
    isolation_env,
    remove_extras,
    split_extra,
    wants_python_kernel,
    write_extras,
)
from .layout import LOCK_WAIT_S
from .spec import NAME_RE, validate_name
from .store import Store, read_json, write_json

if TYPE_CHECKING:
    from .service import EnvService

KERNEL_PREFIX = "envmgr-"
SHARED = "shared-"
LOCAL_DOTTED = "local."  # a local name that starts with "shared-"
# The package linked into each kernelspec for the magics (``pylib/jupyter_env_manager``).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
PYLIB = "pylib"
ACTIVATE_TEMPLATE = '__envmgr_cmd=("$@"); {sources} exec "${{__envmgr_cmd[@]}}"'
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KernelError(EnvManagerError):
    """One environment's kernelspec could not be written; the message says why."""

    status = 409


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
            write_json(directory / "kernel.json", spec, home_mode())
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


def _building(store: Store, name: str) -> bool:
    """Whether a build of ``name`` is under way (its worker will write the kernelspec)."""
    from .records import LIVE

    try:
        latest = store.latest_build(name)
    except EnvManagerError:
        return False
    return latest is not None and latest.status in LIVE and store.build_is_alive(name, latest)


class Kernels:
    """The kernel part of the facade: which environments have a kernelspec, for this user.

    What the user turned on or off (an opt-out of a managed environment, an opt-in of one made
    by conda) is kept per user in the local store's ``kernels.json``, never in a shared store.
    """

    def __init__(self, service: EnvService):
        self.svc = service
        self._thread_lock = threading.RLock()
        # Fixed for the service's life: work still running in a thread when the server stops
        # (a sync, a request) must not follow a later change of the environment variables.
        self.dir = kernels_dir()
        # kernel name -> stat of the kernel.json last announced by sync (announced once)
        self._announced: dict[str, tuple[int, int] | None] = {}

    @contextlib.contextmanager
    def _serialized(self) -> Iterator[None]:
        """One change of this user's kernelspecs and intents at a time, across threads (the
        watcher's sync and a request) and processes (the CLI); the wait is bounded."""
        with self._thread_lock:
            self.svc.local.ensure()
            fd = os.open(self.svc.local.meta / "kernels.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                deadline = time.monotonic() + LOCK_WAIT_S
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise Conflict(
                                "Another process is changing your kernelspecs (waited "
                                f"{LOCK_WAIT_S:g} s): try again"
                            ) from None
                        time.sleep(0.05)
                yield
            finally:
                os.close(fd)

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
        write_json(self._intents_path, intents, home_mode())

    def wanted(self, scope: str, name: str, managed: bool = True, intents=None) -> bool:
        intents = self._intents() if intents is None else intents
        return intents.get(f"{scope}/{name}", managed)

    def installed(self) -> set[str]:
        return installed(self.dir)

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
        with self._serialized():
            kname = write_kernelspec(
                scope, name, store.active_prefix(name), display, version, store.root, self.dir
            )
            self._set_intent(scope, name, True)
        self._event("activated", scope, name, kname)
        return svc.envs.get(scope, name, versions=False)

    def deactivate(self, scope: str, name: str, actor: str | None = None) -> dict[str, Any]:
        svc = self.svc
        view = svc.envs.get(scope, name, versions=False)
        with self._serialized():
            remove_kernelspec(scope, name, self.dir)
            self._set_intent(scope, name, False if view["managed"] else None)
        self._event("deactivated", scope, name, kernel_name(scope, name))
        return svc.envs.get(scope, name, versions=False)

    def _event(self, action: str, scope: str, name: str, kname: str) -> None:
        self.svc.emit(
            "kernel", {"action": action, "scope": scope, "name": name, "kernel_name": kname}
        )

    def forget(self, scope: str, name: str) -> None:
        """An environment is being deleted: its kernelspec and the user's intent go."""
        with self._serialized():
            remove_kernelspec(scope, name, self.dir)
            self._set_intent(scope, name, None)

    def sync(
        self,
        only: Iterable[tuple[str, str]] | None = None,
        announce: Iterable[tuple[str, str]] = (),
    ) -> dict[str, list[str]]:
        """Re-create missing kernelspecs of active environments; remove orphaned ones.

        ``only``: just these (scope, name) environments (those the watcher saw change), their
        kernelspecs written, updated or removed as a full sync would; None: every environment
        and every kernelspec of ours (the server's start-up sync). ``announce``: environments
        whose build just ended: their kernelspec (written by the build's worker, so already
        current) is announced as a ``kernel`` event all the same, once.

        One environment whose kernelspec cannot be written is listed in ``failed`` ("KERNEL:
        reason") and logged; the others are synced all the same. Each kernelspec written or
        removed is a ``kernel`` event, so clients refresh their kernelspecs (after a server's
        start-up sync, which runs while the server already answers, and a teammate's change).
        """
        keys = None if only is None else set(only)
        with self._serialized():  # a deactivate meanwhile must not be undone by this sync
            done = self._sync(keys)
            for kname in done["created"] + done["updated"]:
                self._announced[kname] = self._kernel_stamp(kname)
            for scope, name in set(announce):
                # The same kernel.json is announced once (the runner and the watcher both see
                # a build of this server end).
                kname = kernel_name(scope, name)
                stamp = self._kernel_stamp(kname)
                if stamp is not None and self._announced.get(kname) != stamp:
                    self._announced[kname] = stamp
                    self._event("activated", scope, name, kname)
        return done

    def _kernel_stamp(self, kname: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.dir / kname / "kernel.json")
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _wanted_kernels(
        self, keys: set[tuple[str, str]] | None
    ) -> dict[str, tuple[Store, str, int | None, str]]:
        """Kernel name -> (store, name, version, display name) of the environments (all, or
        those of ``keys``) that should have a kernelspec."""
        intents = self._intents()
        want: dict[str, tuple[Store, str, int | None, str]] = {}
        for store in self.svc.stores():
            if keys is None:
                managed = store.managed_names()
                unmanaged = store.unmanaged_names(set(managed))
            else:
                mine = [name for scope, name in keys if scope == store.scope]
                managed = [name for name in mine if store.exists(name)]
                unmanaged = [
                    name
                    for name in mine
                    if name not in managed
                    and os.path.isdir(os.path.join(store.prefix(name), "conda-meta"))
                ]
            for name in managed:
                version = store.active_version(name)
                if version and self.wanted(store.scope, name, True, intents):
                    try:
                        display = store.read_env(name).spec.display_name or name
                    except NotFound:
                        continue
                    want[kernel_name(store.scope, name)] = (store, name, version, display)
            for name in unmanaged:
                if self.wanted(store.scope, name, False, intents):
                    want[kernel_name(store.scope, name)] = (store, name, None, name)
        return want

    def _present(self, keys: set[tuple[str, str]] | None) -> set[str]:
        """Our installed kernelspecs: all, or those of the environments ``keys`` (their Python
        kernel and the kernels they ship), without a stat per kernelspec of every other."""
        if keys is None:
            return installed(self.dir)
        mains = {kernel_name(scope, name) for scope, name in keys}
        candidates = set(mains)
        for kname in mains:
            candidates.update(extras_of(self.dir, kname))
        return {k for k in candidates if os.path.exists(os.path.join(self.dir, k, "kernel.json"))}

    def _sync(self, keys: set[tuple[str, str]] | None = None) -> dict[str, list[str]]:
        present = self._present(keys)
        want = self._wanted_kernels(keys)
        created: list[str] = []
        updated: list[str] = []
        removed: list[str] = []
        failed: list[str] = []
        for kname, (store, name, version, display) in want.items():
            prefix = store.active_prefix(name)
            try:
                if is_current(store.scope, name, prefix, display, version, store.root, self.dir):
                    continue
                if version is not None and _building(store, name):
                    continue  # its worker writes the kernelspec once the version is in use
                write_kernelspec(store.scope, name, prefix, display, version, store.root, self.dir)
            except KernelError as err:
                self.svc.log.warning("jupyter_env_manager: %s", err.message)
                failed.append(f"{kname}: {err.message}")
                continue
            (updated if kname in present else created).append(kname)
            self._event("activated", store.scope, name, kname)
        for kname in present - set(want):
            parsed = parse_kernel_name(kname)
            extra = split_extra(kname)  # a shipped kernel's spec whose environment is gone
            if keys is not None:  # only the kernelspecs of the environments asked about
                owner = parsed or (parse_kernel_name(extra[0]) if extra else None)
                if owner not in keys:
                    continue
            if parsed and remove_kernel(kname, self.dir):
                removed.append(kname)
                self._event("deactivated", *parsed, kname)
            if extra and extra[0] not in want and remove_kernel(kname, self.dir):
                removed.append(kname)
        return {"created": created, "updated": updated, "removed": removed, "failed": failed}
