"""Environments: list, show, create (and build), import, edit, delete, adopt, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .actions import NO_SHARED, env_actions
from .bodies import CreateRequest, create_request, import_request, update_fields
from .conda_registry import register_conda_env, unregister_conda_env
from .diagnose import redact
from .envyml import to_environment_yml
from .errors import Conflict, NotFound, ValidationError
from .lockfile import read_lock, site_packages, write_locks
from .spec import (
    SPEC_FIELDS,
    EnvSpec,
    make_spec,
    validate_fields,
    validate_name,
)
from .store import Build, EnvRecord, now

if TYPE_CHECKING:
    from .service import EnvService

EXPORT_FORMATS = {
    "environment.yml": ("text/yaml", "environment.yml"),
    "lock": ("application/json", "lock.json"),
    "explicit": ("text/plain", "explicit.txt"),
}


class Environments:
    def __init__(self, service: EnvService):
        self.svc = service

    # -- views -------------------------------------------------------------------------------

    def list(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every environment's view with its actions (see :mod:`.listing`)."""
        return self.svc.listing.views(scope)

    def get(self, scope: str, name: str, versions: bool = True) -> dict[str, Any]:
        svc = self.svc
        store = svc.store(scope)
        validate_name(name)
        if not store.exists(name):
            if name in store.unmanaged_names():
                view = svc.views.unmanaged(store, name, svc.kernels.installed())
                view = self._with_actions(view, store.write_denial(), self._shared_denial())
                if versions:
                    view["versions"] = []
                return view
            raise NotFound(f"No environment {name!r} in the {scope} store")
        view = svc.views.view(store, name, svc.kernels.installed())
        view = self._with_actions(view, store.write_denial(name), self._shared_denial())
        if versions:
            view["versions"] = [b.public() for b in svc.builds.history(store, name)]
        return view

    def _shared_denial(self) -> str | None:
        shared = self.svc.shared
        return NO_SHARED if shared is None else shared.write_denial()

    def _with_actions(
        self, view: dict[str, Any], denial: str | None, shared_denial: str | None
    ) -> dict[str, Any]:
        view["actions"] = env_actions(view, denial, shared_denial)
        return self.svc.publishing.decorate(view)

    # -- create / import / edit / delete -----------------------------------------------------

    def create(
        self, body: dict[str, Any] | CreateRequest, actor: str | None = None
    ) -> tuple[dict[str, Any], Build | None]:
        """Make an environment from a create body (spec fields, ``build``: start its build).

        Every door hands the body over as it came: :mod:`.bodies` checks it in one place, and
        a body it refuses has created nothing."""
        req = body if isinstance(body, CreateRequest) else create_request(body, self._urls())
        scope, name, fields = req.scope, req.name, req.fields
        store = self.svc.store(scope)
        self.check_base(scope, fields.get("base"))
        store.check_prefix_length(name)
        store.check_writable()
        spec = make_spec(name, fields)
        stamp = now()
        store.create_env(EnvRecord(spec, stamp, stamp, self.svc.actor(actor)))
        self.svc.emit("environment", {"action": "created", "scope": scope, "name": name})
        started = self.svc.builds.start(scope, name, actor) if req.build else None
        return self.get(scope, name, versions=False), started

    def import_(
        self, body: dict[str, Any], actor: str | None = None
    ) -> tuple[dict[str, Any], Build | None]:
        """Make an environment from an environment.yml (``pip:`` included)."""
        return self.create(import_request(body, self._urls()), actor)

    def _urls(self) -> bool:
        return bool(self.svc.settings.pip_allow_direct_urls)

    def check_base(self, scope: str, base: str | None) -> None:
        if not base:
            return
        base_scope, name = split_base(scope, base)
        store = self.svc.store(base_scope)
        if not store.exists(name) or not store.active_version(name):
            raise ValidationError(
                f"Base environment {base!r} does not exist or has no built version",
                field="base",
                item=base,
            )

    def update(
        self, scope: str, name: str, body: dict[str, Any], actor: str | None = None
    ) -> dict[str, Any]:
        store = self.svc.managed(scope, name)
        fields = update_fields(body, self._urls())
        store.check_writable(name)
        with store.env_lock(name):
            record = store.read_env(name)
            record.spec = self.merged_spec(scope, name, record.spec, fields)
            record.updated_at = now()
            record.updated_by = self.svc.actor(actor)
            store.write_env(name, record)
        self.svc.emit("environment", {"action": "updated", "scope": scope, "name": name})
        return self.get(scope, name, versions=False)

    def merged_spec(self, scope: str, name: str, spec: EnvSpec, fields: dict[str, Any]) -> EnvSpec:
        """``spec`` with validated ``fields`` applied (a base replaces python and back)."""
        merged = {**spec.to_dict(), **fields}
        if "base" in fields and fields["base"]:
            merged["python"] = None
        if fields.get("python"):
            merged["base"] = None
        if merged.get("base") == f"{scope}/{name}" or merged.get("base") == name:
            raise ValidationError("An environment cannot be its own base", field="base")
        self.check_base(scope, merged.get("base"))
        out = EnvSpec.from_dict(merged)
        if not out.display_name:
            out.display_name = name
        return out

    def delete(self, scope: str, name: str, actor: str | None = None) -> None:
        svc = self.svc
        store = svc.managed(scope, name)
        store.check_writable(name)
        store.delete_env(name)  # 409 while a build of it is queued or runs anywhere
        svc.kernels.forget(scope, name)
        unregister_conda_env(store.prefix(name))
        svc.retention.collect(scope, name)  # versions running kernels use stay until they end
        svc.log.info("%s deleted %s/%s", svc.actor(actor), scope, name)
        svc.emit("environment", {"action": "deleted", "scope": scope, "name": name})

    # -- adopt / export ----------------------------------------------------------------------

    def adopt(self, scope: str, name: str, actor: str | None = None) -> dict[str, Any]:
        """Manage an environment made by conda/mamba: derive a spec from its records."""
        svc = self.svc
        store = svc.store(scope)
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
        # What pip (or uv) installed and no conda record owns: the spec's pip layer, at the
        # installed versions, so the next build keeps it instead of removing it.
        pip_layer = foreign_pip_distributions(store.prefix(name), records)
        pip = [f"{d['name']}=={d['version']}" for d in pip_layer]
        fields = validate_fields(
            {"python": python, "conda": sorted(set(conda)), "pip": pip}, SPEC_FIELDS
        )
        spec = make_spec(name, fields)
        stamp = now()
        who = svc.actor(actor)
        record = EnvRecord(spec, stamp, stamp, who, {"adopted": True})
        store.check_writable()
        store.create_env(record, existing_prefix=True)
        # Version 1 is the prefix as found: its records become the lock, so it can be
        # reverted to, copied and exported like any build.
        build = store.allocate_build(
            name, Build(version=0, kind="adopt", status="succeeded", started_at=stamp, user=who)
        )
        build_dir = store.build_dir(name, build.version)
        store.new_file(build_dir / "spec.json", json.dumps(spec.to_dict(), indent=1))
        channels = sorted({str(r.channel) for r in records if r.channel}) or list(
            svc.settings.channels
        )
        write_locks(build_dir, records, pip_layer, channels)
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
        svc.emit("environment", {"action": "created", "scope": scope, "name": name})
        return self.get(scope, name)

    def export(self, scope: str, name: str, fmt: str) -> tuple[str, str, str]:
        """(text, content type, file name) of the spec or the lock in use."""
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(
                f"Unknown export format {fmt!r}: use environment.yml, lock or explicit",
                field="format",
                item=str(fmt),
            )
        store = self.svc.managed(scope, name)
        content_type, filename = EXPORT_FORMATS[fmt]
        if fmt == "environment.yml":
            channels = [redact(c) for c in self.svc.settings.channels]
            return to_environment_yml(store.read_env(name).spec, channels), content_type, filename
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
        from rattler import Platform

        lines = [
            f"# {scope}/{name} version {version}, exported by jupyter_env_manager",
            f"# platform: {Platform.current()}",
            "@EXPLICIT",
        ]
        for entry in lock["conda"]:
            hash_part = f"#{entry['md5']}" if entry.get("md5") else ""
            lines.append(f"{entry['url']}{hash_part}")
        for dist in lock["pip"]:
            lines.append(f"# pip: {dist['name']}=={dist['version']}")
        return "\n".join(lines) + "\n", content_type, f"{name}-v{version}.explicit.txt"


PIP_INSTALLERS = ("pip", "uv")


def foreign_pip_distributions(prefix: Path, records: list[Any]) -> list[dict[str, str]]:
    """The distributions of ``prefix`` that pip or uv installed (their ``INSTALLER``) and no
    conda record owns (its files do not list the dist-info), sorted by name."""
    sp = site_packages(prefix)
    if sp is None:
        return []
    owned = {
        str(Path(f).parent) for rec in records for f in (rec.files or []) if ".dist-info/" in str(f)
    }
    out = []
    for info in sorted(sp.glob("*.dist-info")):
        if str(info.relative_to(prefix)) in owned:
            continue
        try:
            installer = (info / "INSTALLER").read_text().strip()
        except OSError:
            continue
        if installer not in PIP_INSTALLERS:
            continue
        dist = _name_and_version(info)
        if dist is not None:
            out.append(dist)
    return sorted(out, key=lambda d: d["name"].lower())


def _name_and_version(info: Path) -> dict[str, str] | None:
    """Name and Version of a dist-info's METADATA (its header, read up to the first blank)."""
    found: dict[str, str] = {}
    try:
        with open(info / "METADATA", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key in ("Name", "Version"):
                    found[key.lower()] = value.strip()
    except OSError:
        return None
    return found if found.keys() == {"name", "version"} else None


def split_base(scope: str, base: str) -> tuple[str, str]:
    """(scope, name) of a spec's ``base`` (``NAME`` is in the same store)."""
    base_scope, _, name = base.rpartition("/")
    return (base_scope or scope), name
