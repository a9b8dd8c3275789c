"""Notebooks pinned to an environment version.

A pin lives in the notebook (``metadata.envmgr = {scope, name, version, lock_sha256}``), so it
travels with the file, and names the notebook's kernel: ``<kernel name>.v<N>`` (for example
``envmgr-mv.v1``), a kernelspec whose launcher starts version N's own directory (see
:mod:`.launch`). Any client that starts kernels by the notebook's kernel name (JupyterLab,
nbconvert, papermill) then runs the pinned version; unpinned notebooks keep the stable names.

Honouring a pin (:meth:`Pins.resolve`) checks it against the store (the environment exists,
version N succeeded, its lock's sha256 is the pin's: otherwise a refusal naming both hashes),
makes the version's directory again from its lock if retention removed it (relinked from the
package cache, the pip layer at its locked versions, no solve; archives no longer in the
channel are named), writes the pinned kernelspec, and records the pin in the store
(``.envmgr/pins/<name>/v<N>.<user>.json``, its mtime the last use), which retention honours
for ``c.EnvManager.pin_keep_s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bodies import check_pin_body
from .errors import BuildFailed, Conflict, NotFound, ValidationError
from .kernels import (
    kernel_name,
    parse_kernel_name,
    parse_pinned_kernel_name,
    pinned_kernel_name,
    write_pinned_kernelspec,
)
from .records import current_user, random_hex
from .store import Store

if TYPE_CHECKING:
    from .service import EnvService


def lock_sha256(store: Store, name: str, version: int) -> str:
    """The sha256 of version ``version``'s lock.json, as recorded when it was built."""
    import hashlib  # here: every build worker imports this module (retention), few hash

    try:
        data = (store.build_dir(name, version) / "lock.json").read_bytes()
    except FileNotFoundError:
        raise NotFound(f"Version {version} of {name!r} has no lock (it never succeeded)") from None
    return hashlib.sha256(data).hexdigest()


def read_notebook(path: Path) -> dict[str, Any]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"No notebook {path}") from None
    except (OSError, ValueError) as err:
        raise ValidationError(
            f"{path} is not a notebook: {err}", field="notebook", item=str(path)
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("metadata", {}), dict):
        raise ValidationError(f"{path} is not a notebook", field="notebook", item=str(path))
    return nb


def write_notebook(path: Path, nb: dict[str, Any]) -> None:
    """Replace the notebook atomically, in nbformat's own layout (indent 1, UTF-8)."""
    tmp = path.with_name(f".{path.name}.{random_hex(4)}.tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    try:
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    except OSError:
        pass
    os.replace(tmp, path)


class Pins:
    """The pin part of the facade (``service.pins``)."""

    def __init__(self, service: EnvService):
        self.svc = service

    # -- honouring a pin ---------------------------------------------------------------------

    def resolve(self, pin: Any, actor: str | None = None) -> dict[str, Any]:
        """Check a pin, make its version's directory and kernelspec, record it; the pin's
        answer (kernel name and all), or the error that says why it cannot be honoured."""
        scope, name, version, sha = check_pin_body(pin)
        store = self.svc.store(scope)
        if not store.exists(name):
            raise NotFound(
                f"This notebook is pinned to {scope}/{name} v{version}, but the {scope} store has "
                f"no environment {name!r} any more (it was deleted, and its locks with it): "
                "recreate it from an export of that version, or unpin the notebook",
                item=name,
            )
        try:
            build = store.read_build(name, version)
        except NotFound:
            raise NotFound(
                f"This notebook is pinned to {scope}/{name} v{version}, which {name!r} does not "
                "have (a recreated environment?): unpin the notebook or pin it again",
                item=f"{name} v{version}",
            ) from None
        if build.status != "succeeded":
            raise Conflict(
                f"{scope}/{name} v{version} is a {build.status} build: nothing to run",
                item=f"{name} v{version}",
            )
        recorded = lock_sha256(store, name, version)
        if sha is not None and sha != recorded:
            raise Conflict(
                f"The pin's lock hash does not match {scope}/{name} v{version}: the notebook says "
                f"{sha}, the store's lock is {recorded}. The environment was recreated or the "
                "notebook was edited: pin it again to use the store's v"
                f"{version}",
                item=f"{name} v{version}",
            )
        directory = store.version_prefix(name, version, build.id)
        materialized = False
        if not directory.is_dir():
            self.materialize(store, name, version)
            materialized = True
        display = (store.read_env(name).spec.display_name or name) + f" v{version} (pinned)"
        if scope == "shared":
            display = display.replace(" (pinned)", " (shared, pinned)")
        kname = write_pinned_kernelspec(
            scope, name, directory, display, version, store.root, self.svc.kernels.dir
        )
        self.record_use(store, name, version)
        return {
            "scope": scope,
            "name": name,
            "version": version,
            "lock_sha256": recorded,
            "kernel_name": kname,
            "display_name": display,
            "materialized": materialized,
        }

    def pin(
        self, scope: str, name: str, version: int | None = None, actor: str | None = None
    ) -> dict[str, Any]:
        """The pin of the version in use (or ``version``), honoured as :meth:`resolve` does."""
        store = self.svc.managed(scope, name)
        if version is None:
            version = store.active_version(name)
            if not version:
                raise ValidationError(
                    f"Environment {name!r} has no version in use: build it first",
                    field="name",
                    item=name,
                )
        return self.resolve({"scope": scope, "name": name, "version": version}, actor)

    # -- notebooks on disk (the CLI; the Lab edits its open model itself) ----------------------

    def pin_notebook(
        self,
        path: str | os.PathLike[str],
        scope: str | None = None,
        name: str | None = None,
        version: int | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        path = Path(path)
        nb = read_notebook(path)
        meta = nb.setdefault("metadata", {})
        if name is None:
            scope, name = self._env_of(meta, path)
        info = self.pin(scope or "local", name, version, actor)
        meta["envmgr"] = {k: info[k] for k in ("scope", "name", "version", "lock_sha256")}
        meta["kernelspec"] = {
            "name": info["kernel_name"],
            "display_name": info["display_name"],
            "language": "python",
        }
        write_notebook(path, nb)
        return info

    def check_notebook(self, path: str | os.PathLike[str], actor: str | None = None):
        """Honour the notebook's pin here (its kernelspec made, its version's directory made
        again if needed): what ``jupyter nbconvert --execute`` needs on a new machine."""
        path = Path(path)
        pin = read_notebook(path).get("metadata", {}).get("envmgr")
        if pin is None:
            raise ValidationError(f"{path} is not pinned", field="notebook", item=str(path))
        return self.resolve(pin, actor)

    def unpin_notebook(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        path = Path(path)
        nb = read_notebook(path)
        meta = nb.setdefault("metadata", {})
        pin = meta.pop("envmgr", None)
        if pin is None:
            raise ValidationError(f"{path} is not pinned", field="notebook", item=str(path))
        scope, name, _, _ = check_pin_body(pin)
        store = self.svc.store(scope)
        display = name
        if store.exists(name):
            display = store.read_env(name).spec.display_name or name
        kname = kernel_name(scope, name)
        meta["kernelspec"] = {
            "name": kname,
            "display_name": display + (" (shared)" if scope == "shared" else ""),
            "language": "python",
        }
        write_notebook(path, nb)
        return {"scope": scope, "name": name, "kernel_name": kname, "unpinned": True}

    def _env_of(self, meta: dict[str, Any], path: Path) -> tuple[str, str]:
        kname = (meta.get("kernelspec") or {}).get("name") or ""
        parsed = parse_kernel_name(kname)
        pinned = parse_pinned_kernel_name(kname)
        if parsed is None and pinned is not None:
            parsed = pinned[:2]
        if parsed is None:
            raise ValidationError(
                f"{path} does not run on an environment's kernel ({kname or 'no kernel'}): "
                "name the environment with --env",
                field="env",
                item=str(path),
            )
        return parsed

    # -- the version's directory, and the store's record of pins ------------------------------

    def materialize(self, store: Store, name: str, version: int) -> Path:
        """Version ``version``'s own directory, made again from its lock (no solve)."""
        from .buildjob import BuildLog
        from .engine import Builder
        from .spec import EnvSpec

        build = store.read_build(name, version)
        spec_file = store.build_dir(name, version) / "spec.json"
        spec = EnvSpec.from_dict(json.loads(spec_file.read_text()))
        job = self.svc.builds.job(
            store,
            name,
            build,
            spec,
            kind="materialize",
            source_build_dir=str(store.build_dir(name, version)),
        )
        log = BuildLog(store.build_dir(name, version) / "materialize.log", lambda phase: None)
        builder = Builder(job, log)
        builder.build_id = build.id
        builder.staging = store.meta / "staging" / f"{name}.v{version}.m{random_hex(4)}"
        try:
            return asyncio.run(builder.materialize())
        except BuildFailed as err:
            raise Conflict(
                f"{store.scope}/{name} v{version} cannot be made again from its lock: {err}",
                item=f"{name} v{version}",
            ) from None
        finally:
            log.close()

    def record_use(self, store: Store, name: str, version: int) -> None:
        """Note that a notebook pinned to this version was opened or run (retention keeps it
        for ``pin_keep_s``). Best effort: a store we may not write is not an error."""
        directory = store.meta / "pins" / name
        path = directory / f"v{version}.{current_user()}.json"
        try:
            for d in (store.meta / "pins", directory):
                store._mkdir(d, exist_ok=True)
            if path.exists():
                os.utime(path)
            else:
                store.new_file(path, json.dumps({"version": version, "user": current_user()}))
        except OSError:
            pass


def pinned_versions(store: Store, name: str, keep_s: float, now: float | None = None) -> set[int]:
    """Versions of ``name`` that a pinned notebook used within ``keep_s`` seconds."""
    now = now or time.time()
    out: set[int] = set()
    try:
        entries = list(os.scandir(store.meta / "pins" / name))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return out
    for entry in entries:
        match = re.fullmatch(r"v([0-9]{1,9})\..+\.json", entry.name)
        if not match:
            continue
        try:
            if now - entry.stat().st_mtime < keep_s:
                out.add(int(match.group(1)))
        except OSError:
            continue
    return out


__all__ = [
    "Pins",
    "check_pin_body",
    "lock_sha256",
    "parse_pinned_kernel_name",
    "pinned_kernel_name",
    "pinned_versions",
]
