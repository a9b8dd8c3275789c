"""A KernelSpecManager that re-reads only the kernelspecs that changed.

jupyter_client's manager reads and parses every ``kernel.json`` on each ``GET /api/kernelspecs``,
and jupyter_server then lists each kernelspec's folder for its resources, one thread task per
kernelspec: with one kernelspec per environment of a large shared store that is a second per
request. This manager keeps, per kernelspec, the REST model (``name``, ``spec``, ``resources``;
jupyter_server sends such a model as it is) and the stat (inode, mtime, size) of its folder and
of its ``kernel.json``; a request lists the kernel folders, stats each kernelspec, and reads
again only those whose stat changed, whoever wrote them (this server, a build worker, the CLI,
``jupyter kernelspec install``).

A stat taken within ``RACY_S`` of the file's mtime is not trusted (a file changed twice in the
same clock tick, keeping its size, would look unchanged): such a kernelspec is read again at the
next request, until it is older.

The extension installs it in place of jupyter_server's default manager at load time
(``c.EnvManager.cache_kernelspecs``, on by default); a manager configured by the user (a
gateway's, another subclass) is left alone. With it, the extension also answers
``GET /api/kernelspecs`` itself (:class:`KernelSpecsHandler`; an extension's handlers are
matched before jupyter_server's): the same body, encoded once per change (encoding a few MB of
JSON was most of a request once nothing was read), the scan in a thread.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import threading
import time
from typing import Any

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager, NoSuchKernel
from jupyter_server.auth.decorator import authorized
from jupyter_server.services.kernelspecs.handlers import MainKernelSpecHandler
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Unicode

RACY_S = 2.0  # a stat this close to its mtime may hide a second change in the same tick

Stamp = tuple[Any, ...]


class CachingKernelSpecManager(KernelSpecManager):
    """jupyter_client's KernelSpecManager, its ``get_all_specs`` cached by stat."""

    base_url = Unicode("/", help="The server's base URL, for the resources' URLs.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        # name -> (resource_dir, stamp, model, trusted)
        self._cache: dict[str, tuple[str, Stamp, dict[str, Any], bool]] = {}
        self.reads = 0  # kernelspecs read (for tests and benches)
        self._generation = 0  # moves whenever a kernelspec is read, added or removed
        self._encoded: tuple[int, str | None, bytes] | None = None

    def _find(self) -> dict[str, tuple[str, Stamp]]:
        """name -> (resource_dir, stamp), with find_kernel_specs' rules: the first kernel
        directory that has a name wins, names are lower case, the native kernel, the allow
        list."""
        found: dict[str, tuple[str, Stamp]] = {}
        for kernel_dir in self.kernel_dirs:
            try:
                entries = list(os.scandir(kernel_dir))
            except OSError:
                continue
            stat = os.stat
            for entry in entries:  # thousands: no helper calls, no path objects
                key = entry.name.lower()
                if key in found:
                    continue
                path = entry.path
                try:
                    spec = stat(path + os.sep + "kernel.json")
                    folder = stat(path)
                except OSError:  # not a kernelspec folder (or not one any more)
                    continue
                found[key] = (
                    path,
                    (
                        folder.st_ino,
                        folder.st_mtime_ns,
                        spec.st_ino,
                        spec.st_mtime_ns,
                        spec.st_size,
                    ),
                )
        if self.ensure_native_kernel and NATIVE_KERNEL_NAME not in found:
            try:
                from ipykernel.kernelspec import RESOURCES

                found[NATIVE_KERNEL_NAME] = (RESOURCES, ("native",))
            except ImportError:
                pass
        if self.allowed_kernelspecs:
            found = {k: v for k, v in found.items() if k in self.allowed_kernelspecs}
        return found

    def _model(self, name: str, resource_dir: str) -> dict[str, Any]:
        """What jupyter_server's handler would make of this kernelspec (``kernelspec_model``),
        plus ``resource_dir`` (what get_all_specs callers read)."""
        spec = self._get_kernel_spec_by_name(name, resource_dir)
        resources: dict[str, str] = {}
        for resource in ("kernel.js", "kernel.css"):
            if os.path.exists(os.path.join(resource_dir, resource)):
                resources[resource] = url_path_join(self.base_url, "kernelspecs", name, resource)
        for logo in glob.glob(os.path.join(glob.escape(resource_dir), "logo-*")):
            file = os.path.basename(logo)
            resources[os.path.splitext(file)[0]] = url_path_join(
                self.base_url, "kernelspecs", name, file
            )
        return {
            "name": name,
            "spec": spec.to_dict(),
            "resources": resources,
            "resource_dir": resource_dir,
        }

    def get_all_specs(self) -> dict[str, Any]:
        """Each kernelspec as ``{name, spec, resources, resource_dir}``; only those whose stat
        changed since the last call are read."""
        return {name: dict(model) for name, model in self._specs().items()}

    def _specs(self) -> dict[str, dict[str, Any]]:
        """The cached models (not to be changed), those whose stat changed read again."""
        found = self._find()
        now_ns = time.time_ns()
        racy_ns = int(RACY_S * 1e9)
        out: dict[str, Any] = {}
        with self._lock:
            for name, (resource_dir, stamp) in found.items():
                known = self._cache.get(name)
                if known is not None and known[3] and known[:2] == (resource_dir, stamp):
                    out[name] = known[2]
                    continue
                try:
                    model = self._model(name, resource_dir)
                except NoSuchKernel:
                    continue  # e.g. its provisioner is not available: logged by jupyter_client
                except Exception:
                    self.log.warning("Error loading kernelspec %r", name, exc_info=True)
                    self._cache.pop(name, None)
                    continue
                self.reads += 1
                self._generation += 1
                # A stat is (folder inode, mtime, kernel.json inode, mtime, size), or the
                # native kernel's marker.
                trusted = len(stamp) == 1 or now_ns - max(stamp[1], stamp[3]) > racy_ns
                self._cache[name] = (resource_dir, stamp, model, trusted)
                out[name] = model
            for name in self._cache.keys() - found.keys():
                del self._cache[name]
                self._generation += 1
        return out

    def encoded(self, default: str | None) -> bytes:
        """The body of ``GET /api/kernelspecs`` (jupyter_server's, byte for byte), encoded
        again only when a kernelspec changed: with thousands of kernelspecs, encoding a few MB
        of JSON was most of what a request cost once nothing is read."""
        specs = self._specs()
        with self._lock:
            known = self._encoded
            if known is not None and known[:2] == (self._generation, default):
                return known[2]
            generation = self._generation
        models = {
            name: {key: model[key] for key in ("name", "spec", "resources")}
            for name, model in specs.items()
        }
        body = json.dumps({"default": default, "kernelspecs": models}).encode()
        with self._lock:
            if self._generation == generation:
                self._encoded = (generation, default, body)
        return body


class KernelSpecsHandler(MainKernelSpecHandler):
    """``GET /api/kernelspecs`` in place of jupyter_server's (the extension's handlers come
    first): the same answer, from the caching manager's encoded body, the scan off the event
    loop. With another manager it is jupyter_server's handler."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        manager = self.kernel_spec_manager
        if not isinstance(manager, CachingKernelSpecManager):
            done = super().get()
            if done is not None:
                await done
            return
        default = self.kernel_manager.default_kernel_name
        body = await asyncio.to_thread(manager.encoded, default)
        self.set_header("Content-Type", "application/json")
        self.finish(body)


def install(server, log) -> CachingKernelSpecManager | None:
    """Put a caching manager in place of jupyter_server's default one (the server's, its
    kernel manager's and the handlers'); None when the server runs another kind of manager."""
    current = server.kernel_spec_manager
    if type(current) is not KernelSpecManager:
        log.info(
            "jupyter_env_manager: kernelspecs not cached (the server uses %s)",
            type(current).__name__,
        )
        return None
    manager = CachingKernelSpecManager(parent=server, base_url=server.base_url)
    # The same configuration as the one replaced (kernel_dirs, allowed_kernelspecs ...).
    for trait in ("kernel_dirs", "allowed_kernelspecs", "ensure_native_kernel", "data_dir"):
        setattr(manager, trait, getattr(current, trait))
    server.kernel_spec_manager = manager
    if getattr(server, "kernel_manager", None) is not None:
        server.kernel_manager.kernel_spec_manager = manager
    if getattr(server, "web_app", None) is not None:
        server.web_app.settings["kernel_spec_manager"] = manager
    return manager
