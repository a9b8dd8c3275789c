"""Builds: start one (build, revert, install/uninstall), read versions and logs, record ends.

A build is numbered and written as a job here (``builds/<N>/job.json``), then handed to the
service's runner (:mod:`.runner`). A build may carry the spec to record when it succeeds
(``record_spec``): revert puts back version N's spec, install/uninstall records the edited spec,
so a failed build leaves the spec as it was with no restore step in any door.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bodies import check_offset, parse_version
from .buildjob import BuildJob
from .environments import split_base
from .errors import Conflict, NotFound, ValidationError
from .spec import EnvSpec, validate_fields, validate_pip_specs, with_packages, without_packages
from .store import LIVE, Build, Store, host_owner, read_json

if TYPE_CHECKING:
    from .service import EnvService

LOG_CHUNK = 4 * 1024 * 1024


class Builds:
    def __init__(self, service: EnvService):
        self.svc = service

    # -- starting ----------------------------------------------------------------------------

    def start(
        self, scope: str, name: str, actor: str | None = None, offline: bool = False
    ) -> Build:
        """Build a new version from the environment's spec (``offline``: no network, also
        when c.EnvManager.offline is False)."""
        return self.svc.runner.submit(scope, name, self.prepare(scope, name, actor, offline))

    def prepare(
        self, scope: str, name: str, actor: str | None = None, offline: bool = False
    ) -> Build:
        """Number and record a build from the spec, without running it."""
        store = self.svc.managed(scope, name)
        spec = store.read_env(name).spec
        # The pip policy of this server, also for a spec saved before it or by another server.
        validate_pip_specs(spec.pip, self.svc.settings.pip_allow_direct_urls)
        extra = {**self._base(scope, spec), **({"offline": True} if offline else {})}
        return self.queue(store, name, "build", None, spec, actor, **extra)

    def revert(self, scope: str, name: str, version: Any, actor: str | None = None) -> Build:
        """Put version N's exact lock back in use (no solve), and N's spec with it."""
        store = self.svc.managed(scope, name)
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
        build = self.queue(
            store,
            name,
            "revert",
            {"version": version},
            spec,
            actor,
            source_build_dir=str(source_dir),
            record_spec=True,
        )
        return self.svc.runner.submit(scope, name, build)

    def install(
        self,
        scope: str,
        name: str,
        packages: list[str],
        pip: bool = False,
        remove: bool = False,
        actor: str | None = None,
    ) -> Build:
        """Add (or remove) packages: build the edited spec; it is recorded only on success."""
        store = self.svc.managed(scope, name)
        kind = "pip" if pip else "conda"
        current = store.read_env(name).spec
        before = list(getattr(current, kind))
        if remove:
            after = without_packages(before, packages, kind, f"{scope}/{name}")
        else:
            after = with_packages(before, packages, kind)
        fields = validate_fields({kind: after}, (kind,), self.svc.settings.pip_allow_direct_urls)
        spec = self.svc.envs.merged_spec(scope, name, current, fields)
        build = self.queue(
            store, name, "build", None, spec, actor, record_spec=True, **self._base(scope, spec)
        )
        return self.svc.runner.submit(scope, name, build)

    def _base(self, scope: str, spec: EnvSpec) -> dict[str, Any]:
        """The job fields of a spec built on a base environment (its lock and spec)."""
        if not spec.base:
            return {}
        base_scope, base_name = split_base(scope, spec.base)
        base_store = self.svc.store(base_scope)
        version = base_store.active_version(base_name) if base_store.exists(base_name) else None
        if not version:
            raise ValidationError(
                f"Base environment {spec.base!r} does not exist or has no built version",
                field="base",
                item=spec.base,
            )
        base_dir = base_store.build_dir(base_name, version)
        return {"base_build_dir": str(base_dir), "base_spec": read_json(base_dir / "spec.json")}

    def job(self, store: Store, name: str, build: Build, spec: EnvSpec, **extra) -> BuildJob:
        s = self.svc.settings
        fields: dict[str, Any] = dict(
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
            write_kernel=self.svc.kernels.wanted(store.scope, name),
            niceness=s.build_niceness,
            keep_versions=s.keep_versions,
            kernel_stale_s=s.kernel_stale_s,
            pin_keep_s=s.pin_keep_s,
            offline=s.offline,
            verify_once=s.verify_once,
        )
        fields.update(extra)  # e.g. a bundle's import: offline, its own wheels
        return BuildJob(**fields)

    def queue(
        self,
        store: Store,
        name: str,
        kind: str,
        source: dict[str, Any] | None,
        spec: EnvSpec,
        actor: str | None,
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
            build = store.allocate_build(
                name,
                Build(
                    version=0,
                    kind=kind,
                    source=source,
                    owner=host_owner(),
                    user=self.svc.actor(actor),
                ),
            )
            job = self.job(store, name, build, spec, **job_extra)
            store.new_file(
                store.build_dir(name, build.version) / "job.json",
                json.dumps(job.to_dict(), indent=1),
            )
            store.new_file(store.log_path(name, build.version))
        self.svc.emit("build", build.event("queued", store.scope, name))
        return build

    # -- reading -----------------------------------------------------------------------------

    def dir(self, scope: str, name: str, version: int) -> Path:
        return self.svc.store(scope).build_dir(name, version)

    def history(self, store: Store, name: str) -> list[Build]:
        """Every build of an environment, dead queued/running ones reaped."""
        builds = []
        for v in store.versions(name):
            try:
                b = store.read_build(name, v)
            except NotFound:  # a version claimed a moment ago, not yet written
                continue
            builds.append(store.reap(name, b) if b.status in LIVE else b)
        return builds

    def list(self, scope: str, name: str) -> list[dict[str, Any]]:
        store = self.svc.managed(scope, name)
        return [b.public() for b in self.history(store, name)]

    def get(self, scope: str, name: str, version: int) -> Build:
        store = self.svc.managed(scope, name)
        build = store.read_build(name, version)
        return store.reap(name, build) if build.status in LIVE else build

    def read_log(self, scope: str, name: str, version: int, offset: int = 0) -> tuple[bytes, int]:
        """Whole lines of a build's log from ``offset`` on, and the offset to read next."""
        store = self.svc.managed(scope, name)
        store.read_build(name, version)
        try:
            with open(store.log_path(name, version), "rb") as f:
                check_offset(offset, os.fstat(f.fileno()).st_size)
                f.seek(offset)
                data = f.read(LOG_CHUNK)
        except FileNotFoundError:
            check_offset(offset, 0)
            data = b""
        # Only hand out whole lines, so a follower never sees half of one.
        data = data[: data.rfind(b"\n") + 1]
        return data, offset + len(data)

    # -- ends --------------------------------------------------------------------------------

    def finish_cancelled(
        self, scope: str, name: str, version: int, by: str = "", build_id: str | None = None
    ) -> Build:
        """Record a cancel for a build that no worker is running (queued, or its worker gone)."""
        return self.finish_unfinished(
            scope,
            name,
            version,
            "cancelled",
            "The build was cancelled" + (f" by {by}" if by else ""),
            build_id=build_id,
        )

    def finish_unfinished(
        self,
        scope: str,
        name: str,
        version: int,
        status: str,
        error: str,
        build_id: str | None = None,
    ) -> Build:
        """End a build whose worker is gone without recording an end, and clear its staging
        (a build whose new version is in use is recorded as succeeded: see Store.finish)."""
        return self.svc.store(scope).finish(name, version, status, error, build_id=build_id)

    def check_cancellable(self, scope: str, name: str, version: int) -> Build:
        build = self.get(scope, name, version)
        self.svc.store(scope).check_writable(name)
        if build.status not in LIVE:
            raise Conflict(
                f"Build v{version} of {name!r} has already {build.status}", item=str(version)
            )
        return build
