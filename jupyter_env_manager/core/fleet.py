"""Every environment at once: install packages into all of them, and find which ones hold a
package (``which``). The incident response of "find every environment with the vulnerable
version, then patch them all" is these two verbs.

``install_all`` starts one build per environment through the normal path (the edited spec is
built and recorded only if it succeeds, :meth:`.builds.Builds.queue`), at most
``max_concurrent_builds`` at a time; an environment the user may not change is skipped with the
reason its ``build`` action gives (:mod:`.actions`); one environment's failure is its row's
outcome and never stops the others. ``which`` reads each environment's lock of the version in
use (a managed one) or its conda-meta and dist-infos (one made by conda), never solving.
"""

from __future__ import annotations

import concurrent.futures
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EnvManagerError, ValidationError
from .lockfile import lock_records, read_lock, site_packages
from .spec import (
    MAX_ITEM_LENGTH,
    check_known,
    package_name,
    shown,
    solver_spec,
    validate_base,
    validate_conda_specs,
    validate_fields,
    validate_pip_specs,
    validate_scope,
    with_packages,
)
from .store import LIVE

if TYPE_CHECKING:
    from .service import EnvService

INSTALL_ALL_FIELDS = ("conda", "pip", "scope", "environments")
KINDS = ("conda", "pip")
_PEP503 = re.compile(r"[-_.]+")


@dataclass
class InstallAllRequest:
    conda: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)
    scope: str | None = None
    environments: list[str] | None = None  # "scope/name" each; None: every environment


@dataclass
class FleetRow:
    """One environment's part of an install into many: what happened and why."""

    scope: str
    name: str
    outcome: str  # queued | succeeded | failed | cancelled | interrupted | skipped
    reason: str | None = None
    version_before: int | None = None
    version_after: int | None = None
    build: int | None = None
    packages: list[dict[str, Any]] = field(default_factory=list)  # name, kind, before, after

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def install_all_request(body: Any, allow_direct_urls: bool = False) -> InstallAllRequest:
    """The body of ``POST install-all`` (and of ``install --all``), checked in one place."""
    check_known(body, INSTALL_ALL_FIELDS)
    conda = validate_conda_specs(body.get("conda"))
    pip = validate_pip_specs(body.get("pip"), allow_direct_urls)
    if not conda and not pip:
        raise ValidationError("Give at least one package in 'conda' or 'pip'", field="conda")
    if any(package_name(c, "conda") == "python" for c in conda):
        raise ValidationError(
            "python cannot be installed into every environment", field="conda", item="python"
        )
    scope = body.get("scope")
    scope = None if scope is None else validate_scope(scope)
    envs = body.get("environments")
    if envs is not None:
        if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
            raise ValidationError(
                "'environments' must be a non-empty list of SCOPE/NAME strings",
                field="environments",
            )
        for item in envs:
            if "/" not in item:
                raise ValidationError(
                    f"Invalid environment {shown(item)} in 'environments': use SCOPE/NAME",
                    field="environments",
                    item=item[:MAX_ITEM_LENGTH],
                )
            try:
                validate_base(item)
            except ValidationError as err:
                raise ValidationError(
                    err.message.replace("base environment", "environment"),
                    field="environments",
                    item=item[:MAX_ITEM_LENGTH],
                ) from None
    return InstallAllRequest(conda, pip, scope, envs)


class Fleet:
    """The facade part for many environments at once (``service.fleet``)."""

    def __init__(self, service: EnvService):
        self.svc = service

    # -- install into all --------------------------------------------------------------------

    def install_all(self, body: Any, actor: str | None = None) -> list[dict[str, Any]]:
        """Install ``conda``/``pip`` packages into every environment the user may change (of
        ``scope``, or those listed in ``environments``): one build each, rows in list order."""
        svc = self.svc
        req = (
            body
            if isinstance(body, InstallAllRequest)
            else install_all_request(body, bool(svc.settings.pip_allow_direct_urls))
        )
        views = svc.envs.list(req.scope)
        if req.environments is not None:
            wanted = list(dict.fromkeys(req.environments))
            by_key = {f"{v['scope']}/{v['name']}": v for v in views}
            missing = [key for key in wanted if key not in by_key]
            if missing:
                raise ValidationError(
                    f"No environment {missing[0]!r}", field="environments", item=missing[0]
                )
            views = [by_key[key] for key in wanted]
        rows: list[FleetRow | None] = [None] * len(views)
        todo: list[int] = []
        for i, view in enumerate(views):
            allowed = view["actions"]["build"]
            if allowed["allowed"]:
                todo.append(i)
            else:
                rows[i] = FleetRow(
                    view["scope"], view["name"], "skipped", allowed["reason"], view["version"]
                )
        workers = max(1, int(svc.settings.max_concurrent_builds))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = {i: pool.submit(self._install_one, views[i], req, actor) for i in todo}
            for i, future in futures.items():
                rows[i] = future.result()
        return [row.to_dict() for row in rows if row is not None]

    def _install_one(self, view: dict[str, Any], req: InstallAllRequest, actor) -> FleetRow:
        scope, name = view["scope"], view["name"]
        row = FleetRow(scope, name, "failed", version_before=view["version"])
        asked = [(package_name(s, "conda"), "conda") for s in req.conda]
        asked += [(package_name(s, "pip"), "pip") for s in req.pip]
        before = self._versions(scope, name, view["version"])
        row.packages = [
            {"name": n, "kind": k, "before": before.get((k, n)), "after": None} for n, k in asked
        ]
        try:
            build = self._start(scope, name, req, actor)
        except EnvManagerError as err:
            row.reason = err.message
            return row
        row.build = build.version
        row.outcome = "queued" if build.status in LIVE else build.status
        if build.status == "succeeded":
            row.version_after = build.version
            after = self._versions(scope, name, build.version)
            for p in row.packages:
                p["after"] = after.get((p["kind"], p["name"]))
        elif build.status not in LIVE:
            row.reason = build.error
        return row

    def _start(self, scope: str, name: str, req: InstallAllRequest, actor):
        """One build of ``scope/name`` with the packages added to its spec (recorded on
        success), as :meth:`.builds.Builds.install` does for one kind."""
        svc = self.svc
        store = svc.managed(scope, name)
        current = store.read_env(name).spec
        edited: dict[str, Any] = {}
        for kind, new in (("conda", req.conda), ("pip", req.pip)):
            if new:
                edited[kind] = with_packages(list(getattr(current, kind)), new, kind)
        fields = validate_fields(edited, tuple(edited), bool(svc.settings.pip_allow_direct_urls))
        spec = svc.envs.merged_spec(scope, name, current, fields)
        builds = svc.builds
        build = builds.queue(
            store, name, "build", None, spec, actor, record_spec=True, **builds._base(scope, spec)
        )
        return svc.runner.submit(scope, name, build)

    def _versions(self, scope: str, name: str, version: int | None) -> dict[tuple[str, str], str]:
        """(kind, normalized name) -> version in the lock of ``version`` ({} without one)."""
        if not version:
            return {}
        try:
            lock = read_lock(self.svc.store(scope).build_dir(name, version))
        except (OSError, ValueError):
            return {}
        out = {("conda", e["name"]): e["version"] for e in lock.get("conda", [])}
        out.update({("pip", _pep503(d["name"])): d["version"] for d in lock.get("pip", [])})
        return out

    # -- which -------------------------------------------------------------------------------

    def which(self, spec: Any, scope: str | None = None, kind: str | None = None) -> dict[str, Any]:
        """Every environment whose version in use holds a package matching ``spec``: a conda
        match spec (conda packages) and/or a PEP 440 requirement (pip packages); ``kind``
        restricts to one. Rows: scope, name, version, package, package_version, kind."""
        conda_match, pip_req = parse_which_spec(spec, kind)
        matches: list[dict[str, Any]] = []
        for store in self.svc.stores(scope):
            managed = store.managed_names()
            for name in managed:
                version = store.active_version(name)
                if not version:
                    continue
                found = _match_lock(store.build_dir(name, version), conda_match, pip_req)
                matches += [_row(store.scope, name, version, *hit) for hit in found]
            for name in store.unmanaged_names(set(managed)):
                found = _match_prefix(store.prefix(name), conda_match, pip_req)
                matches += [_row(store.scope, name, None, *hit) for hit in found]
        return {"spec": spec, "kind": kind, "matches": matches}


def _row(scope: str, name: str, version: int | None, package: str, pv: str, kind: str):
    return {
        "scope": scope,
        "name": name,
        "version": version,
        "package": package,
        "package_version": pv,
        "kind": kind,
    }


def parse_which_spec(spec: Any, kind: str | None) -> tuple[Any, Any]:
    """(conda MatchSpec or None, pip Requirement or None) of a ``which`` query."""
    from packaging.requirements import InvalidRequirement, Requirement
    from rattler import MatchSpec

    if kind is not None and kind not in KINDS:
        raise ValidationError(
            f"Invalid kind {shown(kind)}: use conda or pip", field="kind", item=str(kind)[:100]
        )
    if not isinstance(spec, str) or not spec.strip():
        raise ValidationError("'spec' is required: a package spec such as 'requests<2.32'",
                              field="spec")  # fmt: skip
    spec = spec.strip()
    if len(spec) > MAX_ITEM_LENGTH or not spec.isascii() or not spec.isprintable():
        raise ValidationError(
            f"Invalid package spec {shown(spec)}", field="spec", item=spec[:MAX_ITEM_LENGTH]
        )
    conda = pip = None
    if kind in (None, "conda"):
        try:
            validate_conda_specs([spec], "spec")  # strict, as specs are everywhere
            conda = MatchSpec(solver_spec(spec))
        except ValidationError:
            conda = None
    if kind in (None, "pip"):
        try:
            pip = Requirement(spec)
        except InvalidRequirement:
            pip = None
        if pip is not None and pip.url:
            pip = None
    if conda is None and pip is None:
        what = {"conda": "conda match spec", "pip": "pip requirement"}.get(
            kind or "", "conda match spec or pip requirement"
        )
        raise ValidationError(
            f"Invalid package spec {shown(spec)}: not a {what}", field="spec", item=spec
        )
    return conda, pip


def _pep503(name: str) -> str:
    return _PEP503.sub("-", name).lower()


def _pip_hit(pip_req: Any, name: str, version: str) -> bool:
    return _pep503(name) == _pep503(pip_req.name) and pip_req.specifier.contains(
        version, prereleases=True
    )


def _match_lock(build_dir: Path, conda_match: Any, pip_req: Any) -> list[tuple[str, str, str]]:
    hits: list[tuple[str, str, str]] = []
    try:
        lock = read_lock(build_dir)
    except (OSError, ValueError):
        return hits
    if conda_match is not None:
        wanted = conda_match.name.normalized
        if any(e["name"] == wanted for e in lock.get("conda", [])):
            for record in lock_records(build_dir):  # exact: build, channel, build number
                if record.name.normalized == wanted and conda_match.matches(record):
                    hits.append((wanted, str(record.version), "conda"))
    if pip_req is not None:
        for dist in lock.get("pip", []):
            if _pip_hit(pip_req, dist["name"], dist["version"]):
                hits.append((dist["name"], dist["version"], "pip"))
    return hits


def _match_prefix(prefix: Path, conda_match: Any, pip_req: Any) -> list[tuple[str, str, str]]:
    """Matches in an environment made by conda: its conda-meta records and dist-infos."""
    hits: list[tuple[str, str, str]] = []
    if conda_match is not None:
        from rattler import PrefixRecord

        wanted = conda_match.name.normalized
        for path in (prefix / "conda-meta").glob(f"{wanted}-*.json"):
            try:
                record = PrefixRecord.from_path(path)
            except Exception:
                continue
            if record.name.normalized == wanted and conda_match.matches(record):
                hits.append((wanted, str(record.version), "conda"))
    sp = site_packages(prefix) if pip_req is not None else None
    if sp is not None:
        for info in sp.glob("*.dist-info"):
            stem = info.name[: -len(".dist-info")]
            dist_name, _, version = stem.rpartition("-")
            if dist_name and _pip_hit(pip_req, dist_name, version):
                try:
                    installer = (info / "INSTALLER").read_text().strip()
                except OSError:
                    installer = ""
                if installer != "conda":
                    hits.append((dist_name, version, "pip"))
    return hits
