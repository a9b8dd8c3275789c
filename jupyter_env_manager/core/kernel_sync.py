"""This user's kernelspecs as a whole (``service.kernels``): activate, deactivate, forget, and
the re-sync that makes the kernelspecs match the stores (all environments at a server's start,
only those that changed afterwards). Writing one kernelspec is :mod:`.kernels`' job.

What the user turned on or off is kept per user in the local store's ``kernels.json``; changes
are serialized across threads and processes by ``kernels.lock`` beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .access import home_mode
from .errors import Conflict, EnvManagerError, KernelError, NotFound, ValidationError
from .kernel_languages import extras_of, split_extra
from .kernels import (
    installed,
    is_current,
    kernel_name,
    kernels_dir,
    parse_kernel_name,
    remove_kernel,
    remove_kernelspec,
    write_kernelspec,
)
from .layout import LOCK_WAIT_S
from .spec import validate_name
from .store import Store, read_json, write_json

if TYPE_CHECKING:
    from .service import EnvService


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
                if keys is None:  # the full sync (at a server's start): a request first
                    self.svc.listing.wait_idle()
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
            if keys is None:
                self.svc.listing.wait_idle()
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
