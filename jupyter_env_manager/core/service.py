"""The core's facade: what every door (REST, magics, CLI) calls, split by purpose.

``EnvService`` holds what all parts share (the settings, the stores, the cached views, the event
callback, the runner that runs builds) and one object per purpose:

- ``service.envs`` (:mod:`.environments`): list, show, create, import, edit, delete, adopt, export;
- ``service.listing`` (:mod:`.listing`): the list of every environment, cached per environment
  by stat fingerprints and kept across restarts;
- ``service.builds`` (:mod:`.builds`): build, revert, install/uninstall, versions, logs, ends;
- ``service.sharing`` (:mod:`.sharing`): copies between stores;
- ``service.packages`` (:mod:`.packages`): a version's packages, diffs, search;
- ``service.kernels`` (:class:`.kernel_sync.Kernels`): activate, deactivate, re-sync kernelspecs;
- ``service.retention`` (:mod:`.retention`): which version directories are kept, removing the
  others, the running kernels of the stores;
- ``service.pins`` (:mod:`.pins`): notebooks pinned to a version, honouring a pin;
- ``service.disk`` (:mod:`.diskuse`): disk use (hard links once), cleaning the package cache.
- ``service.fleet`` (:mod:`.fleet`): install into many environments, which hold a package;
- ``service.wheels`` (:mod:`.wheels`): a private wheel added to an environment.
- ``service.publishing`` (:mod:`.publishing`): submit, review, approve, reject, withdraw, audit.

Methods are synchronous and quick (metadata reads and writes); the server calls them off its
event loop. Every method that changes state takes the ``actor`` (who is acting) and records it.
Builds are numbered and written as a job here, then handed to the door's runner
(:mod:`.runner`): the server's queue runs them in the background, the CLI and the magics in the
foreground.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from .builds import Builds
from .diskuse import DiskUse
from .environments import Environments
from .errors import NotFound, ValidationError
from .fleet import Fleet
from .kernel_sync import Kernels
from .listing import Listing, cache_path
from .packages import Packages
from .pins import Pins
from .publishing import Publishing
from .retention import Retention
from .sharing import Sharing
from .spec import validate_name, validate_scope
from .store import Build, Store, current_user
from .views import EnvViews
from .wheels import Wheels

Emit = Callable[[str, dict[str, Any]], None]


class Runner(Protocol):
    """Runs a prepared build: the server's queue (background) or a door's foreground runner."""

    def submit(self, scope: str, name: str, build: Build) -> Build: ...


class NoRunner:
    """A service without a runner (tests, benchmarks): builds stay queued for the caller."""

    def submit(self, scope: str, name: str, build: Build) -> Build:
        return build


class EnvService:
    """Environments of the local store and (when configured) the shared store."""

    def __init__(
        self,
        settings,
        log: logging.Logger | None = None,
        emit: Emit | None = None,
        runner: Runner | None = None,
    ):
        self.settings = settings
        self.log = log or logging.getLogger("jupyter_env_manager")
        self._door_emit: Emit = emit or (lambda kind, data: None)
        self.runner: Runner = runner or NoRunner()
        self.local = Store(settings.local_root, "local")
        self.shared = Store(settings.shared_root, "shared") if settings.shared_root else None
        self.user = current_user()
        self.views = EnvViews(settings.pin_keep_s)
        self.envs = Environments(self)
        self.builds = Builds(self)
        self.sharing = Sharing(self)
        self.kernels = Kernels(self)
        self.packages = Packages(self)
        self.retention = Retention(self)
        self.pins = Pins(self)
        self.disk = DiskUse(self)
        self.views.disk = self.disk.cached
        self.fleet = Fleet(self)
        self.wheels = Wheels(self)
        self.publishing = Publishing(self)
        self.listing = Listing(self, cache_path(settings.local_root, settings.shared_root))

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Tell the door (its events) and the parts that follow builds' ends."""
        self._door_emit(kind, data)
        self.publishing.on_event(kind, data)

    # -- stores ------------------------------------------------------------------------------

    def store(self, scope: str) -> Store:
        validate_scope(scope)
        if scope == "shared":
            if self.shared is None:
                raise ValidationError(
                    "No shared store is configured (set c.EnvManager.shared_root or "
                    "JUPYTER_ENV_MANAGER_SHARED_ROOT)",
                    field="scope",
                    item="shared",
                )
            return self.shared
        return self.local

    def stores(self, scope: str | None = None) -> list[Store]:
        """One store, or both: then only those this user may read (a shared store may not be)."""
        if scope is not None:  # "" is not "both": store() names it as a bad scope
            return [self.store(scope)]
        return [
            s
            for s in (self.local, self.shared)
            if s is not None and (s is self.local or s.permission() != "none")
        ]

    def managed(self, scope: str, name: str) -> Store:
        """The store of a managed environment (400 for one made by conda, 404 for none)."""
        store = self.store(scope)
        validate_name(name)
        if not store.exists(name):
            if name in store.unmanaged_names():
                raise ValidationError(
                    f"Environment {name!r} was not created by the environment manager: "
                    "adopt it first",
                    field="name",
                    item=name,
                )
            raise NotFound(f"No environment {name!r} in the {scope} store")
        return store

    def actor(self, actor: str | None) -> str:
        """Who is acting: the door's user (REST: the server's identity), else this process's."""
        return actor or self.user

    def info(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "version": __version__,
            "user": self.user,
            "local_root": str(self.local.root),
            "shared_root": str(self.shared.root) if self.shared else None,
            "shared_access": self.shared.permission() if self.shared else None,
            "shared_package_cache": self.shared_package_cache(),
            "channels": list(self.settings.channels),
            "engine": {"name": "py-rattler", "version": _dist_version("py-rattler")},
            "pip_engine": {"name": "uv", "version": _dist_version("uv")},
            "kernel_packages": list(self.settings.kernel_packages),
            "default_python": self.settings.default_python,
            "max_concurrent_builds": self.settings.max_concurrent_builds,
            **self.publishing.info(),
        }

    def shared_package_cache(self) -> dict[str, Any] | None:
        """Where this user's builds into the shared store link packages from, and whether they
        hard-link or copy every file (and why): see :mod:`.pkgcache`."""
        if self.shared is None or self.shared.permission() != "write":
            return None
        from .pkgcache import choose

        try:
            return choose(self.shared, self.settings.pkgs_dir, make=False).public()
        except OSError as err:
            return {"path": None, "links": False, "note": f"could not be checked: {err}"}

    def recover(self) -> list[str]:
        """At start: finish or undo cut-short swaps, mark dead builds interrupted."""
        out = []
        for store in self.stores():
            if store.meta.exists():
                recovered = store.recover(pause=self.listing.wait_idle)  # a request first
                out += [f"{store.scope}/{n} v{v}" for n, v in recovered]
        return out


@functools.cache
def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
