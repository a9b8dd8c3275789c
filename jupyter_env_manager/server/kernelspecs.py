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
gateway's, another subclass) is left alone.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from typing import Any

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager, NoSuchKernel
from jupyter_server.utils import url_path_join
from traitlets import Unicode

RACY_S = 2.0  # a stat this close to its mtime may hide a second change in the same tick

Stamp = tuple[Any, ...]


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class CachingKernelSpecManager(KernelSpecManager):
    """jupyter_client's KernelSpecManager, its ``get_all_specs`` cached by stat."""

    base_url = Unicode("/", help="The server's base URL, for the resources' URLs.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        # name -> (resource_dir, stamp, model, trusted)
        self._cache: dict[str, tuple[str, Stamp, dict[str, Any], bool]] = {}
        self.reads = 0  # kernelspecs read (for tests and benches)

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
            for entry in entries:
                key = entry.name.lower()
                if key in found:
                    continue
                spec = _stamp(os.path.join(entry.path, "kernel.json"))
                if spec is None:  # not a kernelspec folder (or not one any more)
                    continue
                found[key] = (entry.path, (_stamp(entry.path), spec))
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
        found = self._find()
        now_ns = time.time_ns()
        racy_ns = int(RACY_S * 1e9)
        out: dict[str, Any] = {}
        with self._lock:
            for name, (resource_dir, stamp) in found.items():
                known = self._cache.get(name)
                if known is not None and known[3] and known[:2] == (resource_dir, stamp):
                    out[name] = dict(known[2])  # callers may change their copy, not ours
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
                trusted = all(
                    part is None or now_ns - part[1] > racy_ns
                    for part in stamp
                    if isinstance(part, tuple)
                )
                self._cache[name] = (resource_dir, stamp, model, trusted)
                out[name] = dict(model)
            for name in self._cache.keys() - found.keys():
                del self._cache[name]
        return out


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
