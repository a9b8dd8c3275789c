"""The core's one facade: what every door (REST, magics, CLI) calls.

Methods here are synchronous and quick (metadata reads and writes); the server calls them off
its event loop. Builds are prepared here (validated, numbered, written as a job) and then run by
a worker process that the door starts: :mod:`.builds` does that for the server (queued, in the
background) and for the CLI and magics (in the foreground, streaming the log).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import kernels
from .bodies import (
    CreateRequest,
    check_offset,
    create_request,
    import_request,
    parse_version,
    update_fields,
)
from .engine import BuildJob, read_lock, register_conda_env, unregister_conda_env, write_locks
from .errors import Conflict, NotFound, ValidationError
from .listing import EnvViews
from .spec import (
    SPEC_FIELDS,
    EnvSpec,
    make_spec,
    to_environment_yml,
    validate_fields,
    validate_name,
    validate_scope,
)
from .store import (
    LIVE,
    Build,
    EnvRecord,
    Store,
    current_user,
    host_owner,
    now,
    read_json,
    write_json,
)

EXPORT_FORMATS = {
    "environment.yml": ("text/yaml", "environment.yml"),
    "lock": ("application/json", "lock.json"),
    "explicit": ("text/plain", "explicit.txt"),
}

Emit = Callable[[str, dict[str, Any]], None]


class EnvService:
    """Environments of the local store and (when configured) the shared store."""

    def __init__(self, settings, log: logging.Logger | None = None, emit: Emit | None = None):
        self.settings = settings
        self.log = log or logging.getLogger("jupyter_env_manager")
        self.emit: Emit = emit or (lambda kind, data: None)
        self.local = Store(settings.local_root, "local")
        self.shared = Store(settings.shared_root, "shared") if settings.shared_root else None
        self._user = current_user()
        self.views = EnvViews()

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
        if scope:
            return [self.store(scope)]
        return [
            s
            for s in (self.local, self.shared)
            if s is not None and (s is self.local or s.permission() != "none")
        ]

    def info(self) -> dict[str, Any]:
        from . import __version__

        return {
            "version": __version__,
            "user": self._user,
            "local_root": str(self.local.root),
            "shared_root": str(self.shared.root) if self.shared else None,
            "shared_access": self.shared.permission() if self.shared else None,
            "channels": list(self.settings.channels),
            "engine": {"name": "py-rattler", "version": _dist_version("py-rattler")},
            "pip_engine": {"name": "uv", "version": _dist_version("uv")},
            "kernel_packages": list(self.settings.kernel_packages),
            "default_python": self.settings.default_python,
            "max_concurrent_builds": self.settings.max_concurrent_builds,
        }

    # -- kernel intents (per user, kept in the local store) -----------------------------------

    @property
    def _intents_path(self) -> Path:
        return self.local.meta / "kernels.json"

    def _intents(self) -> dict[str, bool]:
        return read_json(self._intents_path, {}) or {}

    def _set_intent(self, scope: str, name: str, active: bool | None) -> None:
        self.local.ensure()
        intents = self._intents()
        if active is None:
            intents.pop(f"{scope}/{name}", None)
        else:
            intents[f"{scope}/{name}"] = active
        write_json(self._intents_path, intents)

    def kernel_wanted(self, scope: str, name: str, managed: bool = True, intents=None) -> bool:
        intents = self._intents() if intents is None else intents
        return intents.get(f"{scope}/{name}", managed)

    def list_envs(self, scope: str | None = None) -> list[dict[str, Any]]:
        installed = kernels.installed()
        out = []
        for store in self.stores(scope):
            managed = store.managed_names()
            for name in managed:
                try:
                    out.append(self.views.view(store, name, installed))
                except NotFound:
                    continue  # deleted while we listed
            for name in store.unmanaged_names(set(managed)):
                out.append(self.views.unmanaged(store, name, installed))
        return out

    def get_env(self, scope: str, name: str, versions: bool = True) -> dict[str, Any]:
        store = self.store(scope)
        validate_name(name)
        if not store.exists(name):
            if name in store.unmanaged_names():
                view = self.views.unmanaged(store, name)
                if versions:
                    view["versions"] = []
                return view
            raise NotFound(f"No environment {name!r} in the {scope} store")
        view = self.views.view(store, name)
        if versions:
            view["versions"] = [b.public() for b in self._builds(store, name)]
        return view

    def _builds(self, store: Store, name: str) -> list[Build]:
        builds = []
        for v in store.versions(name):
            try:
                b = store.read_build(name, v)
            except NotFound:
                continue
            builds.append(store.reap(name, b) if b.status in LIVE else b)
        return builds

    def _managed(self, scope: str, name: str) -> Store:
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

    # -- create / update / delete ------------------------------------------------------------

    def create_env(self, body: dict[str, Any] | CreateRequest) -> dict[str, Any]:
        if not isinstance(body, CreateRequest):
            body = create_request(body, self.settings.pip_allow_direct_urls)
        scope, name, fields = body.scope, body.name, body.fields
        store = self.store(scope)
        self._check_base(scope, fields.get("base"))
        store.check_prefix_length(name)
        store.check_writable()
        spec = make_spec(name, fields)
        stamp = now()
        store.create_env(EnvRecord(spec, stamp, stamp, current_user()))
        self.emit("environment", {"action": "created", "scope": scope, "name": name})
        return self.views.view(store, name)

    def import_env(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.create_env(import_request(body, self.settings.pip_allow_direct_urls))

    def _check_base(self, scope: str, base: str | None) -> None:
        if not base:
            return
        base_scope, name = self._split_base(scope, base)
        store = self.store(base_scope)
        if not store.exists(name) or not store.active_version(name):
            raise ValidationError(
                f"Base environment {base!r} does not exist or has no built version",
                field="base",
                item=base,
            )

    @staticmethod
    def _split_base(scope: str, base: str) -> tuple[str, str]:
        base_scope, _, name = base.rpartition("/")
        return (base_scope or scope), name

    def update_env(self, scope: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        store = self._managed(scope, name)
        fields = update_fields(body, self.settings.pip_allow_direct_urls)
        store.check_writable(name)
        with store.env_lock(name):
            record = store.read_env(name)
            merged = {**record.spec.to_dict(), **fields}
            if "base" in fields and fields["base"]:
                merged["python"] = None
            if fields.get("python"):
                merged["base"] = None
            if merged.get("base") == f"{scope}/{name}" or merged.get("base") == name:
                raise ValidationError("An environment cannot be its own base", field="base")
            self._check_base(scope, merged.get("base"))
            record.spec = EnvSpec.from_dict(merged)
            if not record.spec.display_name:
                record.spec.display_name = name
            record.updated_at = now()
            store.write_env(name, record)
        self.emit("environment", {"action": "updated", "scope": scope, "name": name})
        return self.views.view(store, name)

    def delete_env(self, scope: str, name: str) -> None:
        store = self._managed(scope, name)
        store.check_writable(name)
        latest = store.latest_build(name)
        if latest and latest.status in LIVE and store.build_is_alive(name, latest):
            raise Conflict(
                f"Build v{latest.version} of {name!r} is {latest.status}: cancel it first",
                item=name,
            )
        kernels.remove_kernelspec(scope, name)
        self._set_intent(scope, name, None)
        unregister_conda_env(store.prefix(name))
        store.delete_env(name)
        self.emit("environment", {"action": "deleted", "scope": scope, "name": name})

    # -- builds ------------------------------------------------------------------------------

    def _job(self, store: Store, name: str, build: Build, spec: EnvSpec, **extra) -> BuildJob:
        s = self.settings
        return BuildJob(
            scope=store.scope,
            root=str(store.root),
            name=name,
            version=build.version,
            kind=build.kind,
            spec=spec.to_dict(),
            channels=list(s.channels),
            pkgs_dir=s.pkgs_dir,
            kernel_packages=list(s.kernel_packages),
            default_python=s.default_python,
            pip_index_url=s.pip_index_url,
            pip_find_links=list(s.pip_find_links),
            pip_no_index=s.pip_no_index,
            write_kernel=self.kernel_wanted(store.scope, name),
            niceness=s.build_niceness,
            **extra,
        )

    def _queue(
        self,
        store: Store,
        name: str,
        kind: str,
        source: dict[str, Any] | None,
        spec: EnvSpec | None = None,
        **job_extra,
    ) -> Build:
        """Number and record a build, unless one is already queued or running (409)."""
        store.check_writable(name)
        with store.env_lock(name):
            latest = store.latest_build(name)
            if latest and latest.status in LIVE:
                latest = store.reap(name, latest)
                if latest.status in LIVE:
                    raise Conflict(
                        f"Build v{latest.version} of {name!r} is already {latest.status}",
                        item=name,
                    )
            spec = spec or store.read_env(name).spec
            build = store.allocate_build(
                name, Build(version=0, kind=kind, source=source, owner=host_owner())
            )
            job = self._job(store, name, build, spec, **job_extra)
            store.new_file(
                store.build_dir(name, build.version) / "job.json",
                json.dumps(job.to_dict(), indent=1),
            )
            store.new_file(store.log_path(name, build.version))
        self.emit("build", build.event("queued", store.scope, name))
        return build

    def prepare_build(self, scope: str, name: str) -> Build:
        store = self._managed(scope, name)
        spec = store.read_env(name).spec
        extra: dict[str, Any] = {}
        if spec.base:
            base_scope, base_name = self._split_base(scope, spec.base)
            base_store = self.store(base_scope)
            version = base_store.active_version(base_name) if base_store.exists(base_name) else None
            if not version:
                raise ValidationError(
                    f"Base environment {spec.base!r} does not exist or has no built version",
                    field="base",
                    item=spec.base,
                )
            extra["base_build_dir"] = str(base_store.build_dir(base_name, version))
            extra["base_spec"] = read_json(base_store.build_dir(base_name, version) / "spec.json")
        return self._queue(store, name, "build", None, **extra)

    def prepare_revert(self, scope: str, name: str, version: Any) -> Build:
        store = self._managed(scope, name)
        version = parse_version(version)
        source = store.read_build(name, version)
        if source.status != "succeeded":
            raise ValidationError(
                f"Version {version} of {name!r} did not build successfully ({source.status}); "
                "only successful versions can be reverted to",
                field="version",
                item=str(version),
            )
        source_dir = store.build_dir(name, version)
        spec = EnvSpec.from_dict(read_json(source_dir / "spec.json") or {"name": name})
        return self._queue(
            store, name, "revert", {"version": version}, spec, source_build_dir=str(source_dir)
        )

    def prepare_copy(
        self, scope: str, name: str, to: Any, new_name: Any = None
    ) -> tuple[dict[str, Any], Build]:
        source_store = self._managed(scope, name)
        to = validate_scope(to, "to")
        target_store = self.store(to)
        new_name = validate_name(new_name) if new_name not in (None, "") else name
        if to == scope and new_name == name:
            raise ValidationError(
                "A copy into the same store needs a new name", field="name", item=new_name
            )
        version = source_store.active_version(name)
        if not version:
            raise ValidationError(
                f"Environment {name!r} has no built version to copy", field="name", item=name
            )
        target_store.check_prefix_length(new_name)
        target_store.check_writable()
        record = source_store.read_env(name)
        spec = EnvSpec.from_dict({**record.spec.to_dict(), "name": new_name})
        if spec.display_name == name:
            spec.display_name = new_name
        stamp = now()
        origin = {"copied_from": {"scope": scope, "name": name, "version": version}}
        target_store.create_env(EnvRecord(spec, stamp, stamp, current_user(), origin))
        self.emit("environment", {"action": "created", "scope": to, "name": new_name})
        build = self._queue(
            target_store,
            new_name,
            "copy",
            origin["copied_from"],
            source_build_dir=str(source_store.build_dir(name, version)),
        )
        return self.views.view(target_store, new_name), build

    def build_dir(self, scope: str, name: str, version: int) -> Path:
        return self.store(scope).build_dir(name, version)

    def builds(self, scope: str, name: str) -> list[dict[str, Any]]:
        store = self._managed(scope, name)
        return [b.public() for b in self._builds(store, name)]

    def get_build(self, scope: str, name: str, version: int) -> Build:
        store = self._managed(scope, name)
        build = store.read_build(name, version)
        return store.reap(name, build) if build.status in LIVE else build

    def read_log(self, scope: str, name: str, version: int, offset: int = 0) -> tuple[bytes, int]:
        store = self._managed(scope, name)
        store.read_build(name, version)
        path = store.log_path(name, version)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                check_offset(offset, size)
                f.seek(offset)
                data = f.read(4 * 1024 * 1024)
        except FileNotFoundError:
            check_offset(offset, 0)
            data = b""
        # Only hand out whole lines, so a follower never sees half of one.
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
        return data, offset + len(data)

    def finish_cancelled(self, scope: str, name: str, version: int, by: str = "") -> Build:
        """Record a cancel for a build that no worker is running (queued, or its worker gone)."""
        return self.finish_unfinished(
            scope,
            name,
            version,
            "cancelled",
            "The build was cancelled" + (f" by {by}" if by else ""),
        )

    def finish_unfinished(
        self, scope: str, name: str, version: int, status: str, error: str
    ) -> Build:
        """End a build whose worker is gone without recording an end, and clear its staging."""
        store = self.store(scope)
        store.remove_tree(store.staging_dir(name, version))  # first: the disk may be full
        with store.env_lock(name):
            build = store.read_build(name, version)
            if build.status in LIVE:
                build.status, build.error, build.finished_at = status, error, now()
                store.write_build(name, build)
        return build

    def check_cancellable(self, scope: str, name: str, version: int) -> Build:
        build = self.get_build(scope, name, version)
        if build.status not in LIVE:
            raise Conflict(
                f"Build v{version} of {name!r} has already {build.status}", item=str(version)
            )
        return build

    # -- kernels -----------------------------------------------------------------------------

    def activate(self, scope: str, name: str) -> dict[str, Any]:
        store = self.store(scope)
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
        kname = kernels.write_kernelspec(scope, name, store.prefix(name), display, version)
        self._set_intent(scope, name, True)
        self.emit(
            "kernel", {"action": "activated", "scope": scope, "name": name, "kernel_name": kname}
        )
        return self.get_env(scope, name, versions=False)

    def deactivate(self, scope: str, name: str) -> dict[str, Any]:
        view = self.get_env(scope, name, versions=False)
        kernels.remove_kernelspec(scope, name)
        self._set_intent(scope, name, False if view["managed"] else None)
        self.emit(
            "kernel",
            {
                "action": "deactivated",
                "scope": scope,
                "name": name,
                "kernel_name": kernels.kernel_name(scope, name),
            },
        )
        return self.get_env(scope, name, versions=False)

    def sync_kernels(self) -> dict[str, list[str]]:
        """Re-create missing kernelspecs of active environments; remove orphaned ones."""
        intents = self._intents()
        installed = kernels.installed()
        wanted: dict[str, tuple[Store, str, int | None, str]] = {}
        for store in self.stores():
            managed = store.managed_names()
            for name in managed:
                version = store.active_version(name)
                if version and self.kernel_wanted(store.scope, name, True, intents):
                    try:
                        display = store.read_env(name).spec.display_name or name
                    except NotFound:
                        continue
                    wanted[kernels.kernel_name(store.scope, name)] = (store, name, version, display)
            for name in store.unmanaged_names(set(managed)):
                if self.kernel_wanted(store.scope, name, False, intents):
                    wanted[kernels.kernel_name(store.scope, name)] = (store, name, None, name)
        created, updated, removed = [], [], []
        for kname, (store, name, version, display) in wanted.items():
            prefix = store.prefix(name)
            if kname in installed and kernels.is_current(
                store.scope, name, prefix, display, version
            ):
                continue
            kernels.write_kernelspec(store.scope, name, prefix, display, version)
            (updated if kname in installed else created).append(kname)
        for kname in installed - set(wanted):
            parsed = kernels.parse_kernel_name(kname)
            if parsed:
                kernels.remove_kernelspec(*parsed)
                removed.append(kname)
        return {"created": created, "updated": updated, "removed": removed}

    def recover(self) -> list[str]:
        """At start: finish or undo cut-short swaps, mark dead builds interrupted."""
        out = []
        for store in self.stores():
            if store.meta.exists():
                out += [f"{store.scope}/{n} v{v}" for n, v in store.recover()]
        return out

    # -- export / adopt ----------------------------------------------------------------------

    def export(self, scope: str, name: str, fmt: str) -> tuple[str, str, str]:
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(
                f"Unknown export format {fmt!r}: use environment.yml, lock or explicit",
                field="format",
                item=str(fmt),
            )
        store = self._managed(scope, name)
        content_type, filename = EXPORT_FORMATS[fmt]
        if fmt == "environment.yml":
            text = to_environment_yml(store.read_env(name).spec, list(self.settings.channels))
            return text, content_type, filename
        version = store.active_version(name)
        if not version:
            raise ValidationError(
                f"Environment {name!r} has no built version: there is no lock yet",
                field="format",
                item=fmt,
            )
        lock = read_lock(store.build_dir(name, version))
        if fmt == "lock":
            return json.dumps(lock, indent=1) + "\n", content_type, f"{name}-v{version}.lock.json"
        lines = [
            f"# {scope}/{name} version {version}, exported by jupyter_env_manager",
            "# platform: " + _platform(),
            "@EXPLICIT",
        ]
        for entry in lock["conda"]:
            hash_part = f"#{entry['md5']}" if entry.get("md5") else ""
            lines.append(f"{entry['url']}{hash_part}")
        for dist in lock["pip"]:
            lines.append(f"# pip: {dist['name']}=={dist['version']}")
        return "\n".join(lines) + "\n", content_type, f"{name}-v{version}.explicit.txt"

    def adopt(self, scope: str, name: str) -> dict[str, Any]:
        """Manage an environment made by conda/mamba: derive a spec from its records."""
        store = self.store(scope)
        validate_name(name)
        if store.exists(name):
            raise Conflict(f"Environment {name!r} is already managed", field="name", item=name)
        if name not in store.unmanaged_names():
            raise NotFound(f"No environment {name!r} in the {scope} store")
        from rattler import PrefixRecord

        python, conda, records = None, [], []
        for path in sorted((store.prefix(name) / "conda-meta").glob("*.json")):
            try:
                rec = PrefixRecord.from_path(path)
            except Exception:
                continue
            records.append(rec)
            pkg = rec.name.normalized
            requested = list(rec.requested_specs or []) or (
                [rec.requested_spec] if rec.requested_spec else []
            )
            if pkg == "python":
                python = ".".join(str(rec.version).split(".")[:2])
            elif requested:
                conda.append(requested[0])
        if not conda:  # no history of what was asked for: take the leaves at their versions
            conda = [
                f"{p.stem.rsplit('-', 2)[0]}=={p.stem.rsplit('-', 2)[1]}"
                for p in (store.prefix(name) / "conda-meta").glob("*.json")
                if not p.stem.startswith("python-")
            ]
        conda = [c for c in conda if not c.split()[0].split("=")[0].split("::")[-1] == "python"]
        fields = validate_fields({"python": python, "conda": sorted(set(conda))}, SPEC_FIELDS)
        spec = make_spec(name, fields)
        stamp = now()
        record = EnvRecord(spec, stamp, stamp, current_user(), {"adopted": True})
        store.check_writable()
        store.create_env(record, existing_prefix=True)
        # Version 1 is the prefix as found: its records become the lock, so it can be
        # reverted to, copied and exported like any build.
        build = store.allocate_build(
            name, Build(version=0, kind="adopt", status="succeeded", started_at=stamp)
        )
        build_dir = store.build_dir(name, build.version)
        store.new_file(build_dir / "spec.json", json.dumps(spec.to_dict(), indent=1))
        channels = sorted({str(r.channel) for r in records if r.channel}) or list(
            self.settings.channels
        )
        write_locks(build_dir, records, [], channels)
        store.new_file(
            store.log_path(name, build.version),
            f"[{stamp[11:19]}] adopted {len(records)} packages from {store.prefix(name)}\n",
        )
        if store.access is not None:
            store.access.open_tree(build_dir)
        build.finished_at = now()
        store.write_build(name, build)
        state = store.read_state(name)
        state["active_version"] = build.version
        store.write_state(name, state)
        register_conda_env(store.prefix(name))
        self.emit("environment", {"action": "created", "scope": scope, "name": name})
        return self.get_env(scope, name)


@functools.cache
def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _platform() -> str:
    from rattler import Platform

    return str(Platform.current())
