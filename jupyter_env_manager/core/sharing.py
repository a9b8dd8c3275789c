"""Sharing: copies of an environment between the local and the shared store.

A copy relinks exactly the source's lock in use (no solve) and reinstalls its pip layer at the
locked versions, so the copy is independent of its source. Publishing with approval
(:mod:`.publishing`) uses the same lock-exact copy, from a request's record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ValidationError
from .spec import EnvSpec, validate_name, validate_scope
from .store import Build, EnvRecord, now

if TYPE_CHECKING:
    from .service import EnvService


class Sharing:
    def __init__(self, service: EnvService):
        self.svc = service

    def copy(
        self, scope: str, name: str, to: Any, new_name: Any = None, actor: str | None = None
    ) -> tuple[dict[str, Any], Build]:
        """Copy the version in use of ``scope/name`` into store ``to`` (as ``new_name``)."""
        svc = self.svc
        source_store = svc.managed(scope, name)
        to = validate_scope(to, "to")
        target_store = svc.store(to)
        if to == "shared":  # under "approval", a non-approver submits a request instead
            svc.publishing.check_direct_copy(name, actor)
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
        target_store.create_env(EnvRecord(spec, stamp, stamp, svc.actor(actor), origin))
        svc.emit("environment", {"action": "created", "scope": to, "name": new_name})
        build = svc.builds.queue(
            target_store,
            new_name,
            "copy",
            origin["copied_from"],
            spec,
            actor,
            source_build_dir=str(source_store.build_dir(name, version)),
        )
        build = svc.runner.submit(to, new_name, build)
        return svc.envs.get(to, new_name, versions=False), build
