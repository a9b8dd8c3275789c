"""The steps of :mod:`.publishing` that change state: submit (the requester), approve and the
recording of a publish's result (an approver). Each is one function over a ``Publishing``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from . import audit
from .access import open_lock
from .diskuse import tree_usage
from .errors import Conflict, EnvManagerError, NotFound, ValidationError
from .lockfile import read_lock
from .records import LIVE, EnvRecord, now, read_json, write_json
from .spec import EnvSpec, validate_name, validate_scope

if TYPE_CHECKING:
    from .publishing import Publishing


def submit(pub: Publishing, scope: Any, name: Any, reason: Any, actor: str) -> dict[str, Any]:
    from .publishing import _latest_success, check_reason, lock_sha256

    svc = pub.svc
    reason = check_reason(reason)
    scope = validate_scope(scope)
    name = validate_name(name)
    shared = pub._shared()
    if scope != "local":
        raise ValidationError(
            "Only an environment of the local store (a draft) can be submitted: the shared "
            "store holds what is published",
            field="scope",
            item=scope,
        )
    store = svc.managed(scope, name)
    inbox = pub.ensure()
    with store.env_lock(name):
        latest = store.latest_build(name)
        if latest and latest.status in LIVE:
            latest = store.reap(name, latest)
            if latest.status in LIVE:
                raise Conflict(
                    f"Build v{latest.version} of {name!r} is {latest.status}: wait for "
                    "it to finish",
                    item=name,
                )
        version = _latest_success(store, name)
        if version is None:
            raise ValidationError(
                f"Environment {name!r} has no successful version to submit: build it first",
                field="name",
                item=name,
            )
        for req in pub._all():
            if req["source"].get("name") != name or not pub.is_mine(req):
                continue
            st = pub.status(req)["status"]
            if st in ("pending", "publishing"):
                raise Conflict(
                    f"Request {req['id']} for {name!r} is already {st}: withdraw it first",
                    item=req["id"],
                )
            if st == "outdated" and os.access(inbox / req["id"], os.W_OK):
                note = "superseded by a resubmission"
                write_json(
                    inbox / req["id"] / "withdrawn.json",
                    {"by": actor, "at": now(), "note": note},
                    pub._file_mode(),
                )
                pub._record("withdrawn", actor, req, note=note)
        source_dir = store.build_dir(name, version)
        removed = []
        for v in store.versions(name):
            if v > version:
                try:
                    build = store.read_build(name, v)
                except NotFound:
                    continue
                if build.status not in LIVE and build.status != "succeeded":
                    removed.append(build)
        published = shared.active_version(name) if _readable(shared, name) else None
        rid = new_id()
        tmp = inbox / f".tmp-{rid}"
        file_mode = pub._file_mode()
        tmp.mkdir()
        try:
            os.chmod(tmp, _dir_mode(file_mode))
            for fname in ("lock.json", "rattler-lock.yml", "spec.json"):
                if (source_dir / fname).exists():
                    _copy(source_dir / fname, tmp / fname, file_mode)
            if removed:
                (tmp / "logs").mkdir()
                os.chmod(tmp / "logs", _dir_mode(file_mode))
                for build in removed:
                    log = store.log_path(name, build.version)
                    if log.exists():
                        _copy(log, tmp / "logs" / f"v{build.version}.txt", file_mode)
            record = store.read_env(name)
            data = {
                "id": rid,
                "name": name,
                "display_name": record.spec.display_name or name,
                "kind": "update" if published else "new",
                "published_version": published,
                "requester": actor,
                "account": audit.account(),
                "reason": reason,
                "created_at": now(),
                "version": version,
                "lock_sha256": lock_sha256(source_dir),
                "source": {
                    "scope": scope,
                    "name": name,
                    "version": version,
                    "root": str(store.root),
                },
                "size": tree_usage([store.prefix(name)])
                if store.active_version(name) == version
                else None,
                "removed_versions": [
                    {"version": b.version, "status": b.status, "error": b.error} for b in removed
                ],
            }
            write_json(tmp / "request.json", data, file_mode)
            os.rename(tmp, inbox / rid)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # The record holds their logs: now the failed versions after it leave the draft.
        for build in removed:
            store.remove_tree(store.build_dir(name, build.version))
    pub._record(
        "submitted", actor, data, version=version, reason=reason, lock_sha256=data["lock_sha256"]
    )
    return pub.get(rid)


def approve(pub: Publishing, rid: Any, actor: str, groups: list[str] | None) -> dict[str, Any]:
    """Publish exactly the submitted lock into the shared store (a lock-exact copy build)."""
    svc = pub.svc
    pub.check_approver(actor, groups)
    req = pub._read(rid)
    rid = req["id"]
    shared = pub._shared()
    name = req["name"]
    with decision_lock(pub):
        st = pub.status(req)
        if st["status"] in ("publishing", "published"):
            raise Conflict(f"Request {rid} is already approved ({st['status']})", item=rid)
        if st["status"] in ("rejected", "withdrawn"):
            raise Conflict(f"Request {rid} was {st['status']}: it cannot be approved", item=rid)
        if st["status"] == "outdated":
            raise Conflict(
                f"Request {rid} is outdated ({st['detail']}): the requester resubmits it",
                item=rid,
            )
        blocking = [c["message"] for c in pub.checks(req) if c["blocking"]]
        if blocking:
            raise Conflict(
                f"Request {rid} fails the policy (enforce_policy): " + "; ".join(blocking), item=rid
            )
        missing = missing_packages(pub.inbox() / rid, svc.settings.pkgs_dir)
        if missing:
            error = (
                f"The locked packages {', '.join(missing)} are no longer in their channels: "
                "nothing was published"
            )
            pub._write_decision(rid, {"state": "failed", "by": actor, "at": now(), "error": error})
            pub._record("publish_failed", actor, req, error=error)
            raise Conflict(error, item=rid)
        spec_data = read_json(pub.inbox() / rid / "spec.json", {}) or {}
        spec = EnvSpec.from_dict({**spec_data, "name": name})
        new = not shared.exists(name)
        if new:
            shared.check_prefix_length(name)
            shared.check_writable()
            stamp = now()
            origin = {"request": rid, "copied_from": _source(req)}
            shared.create_env(EnvRecord(spec, stamp, stamp, req["requester"], origin))
            svc.emit("environment", {"action": "created", "scope": "shared", "name": name})
        build = svc.builds.queue(
            shared,
            name,
            "copy",
            {"request": rid, **_source(req)},
            spec,
            actor,
            source_build_dir=str(pub.inbox() / rid),
            record_spec=True,
        )
        pub._write_decision(
            rid,
            {
                "state": "publishing",
                "by": actor,
                "at": now(),
                "new": new,
                "build": {"name": name, "version": build.version, "id": build.id},
            },
        )
    pub._record("approved", actor, req, version=build.version)
    svc.runner.submit("shared", name, build)
    decision = pub._decision(rid)
    if decision and decision.get("state") == "publishing":
        settle(pub, req, decision)
    return pub.get(rid)


def settle(pub: Publishing, req: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """Record the result of a publish whose build has ended (by an approver's process)."""
    shared = pub._shared()
    ref = decision.get("build") or {}
    name, version = ref.get("name", req["name"]), ref.get("version")
    try:
        build = shared.build_of(name, int(version or 0), ref.get("id"))
    except (TypeError, ValueError):
        build = None
    if build is not None and build.status in LIVE:
        build = shared.reap(name, build)
        if build.status in LIVE:
            return decision
    if build is not None and build.status == "succeeded":
        mismatch = _lock_mismatch(pub.inbox() / req["id"], shared.build_dir(name, build.version))
        result = (
            {"state": "failed", "error": f"The published lock differs from the request: {mismatch}"}
            if mismatch
            else {"state": "published", "version": build.version, "verified": True}
        )
    else:
        error = build.error if build is not None else "its build is gone"
        result = {
            "state": "failed",
            "error": f"The publish failed ({build.status if build else 'gone'}): {error}",
        }
    if not os.access(pub._decisions(), os.W_OK):
        return {**decision, **result}  # not an approver: an approver's process records it
    with decision_lock(pub):
        current = pub._decision(req["id"])
        if not current or current.get("state") != "publishing" or current.get("build") != ref:
            return current or decision
        final = {**current, **result, "settled_at": now()}
        pub._write_decision(req["id"], final)
        if decision.get("new") and result["state"] == "failed" and not shared.active_version(name):
            with contextlib.suppress(EnvManagerError, OSError):
                shared.delete_env(name)  # nothing was published: no empty environment either
                pub.svc.emit("environment", {"action": "deleted", "scope": "shared", "name": name})
    event = "published" if result["state"] == "published" else "publish_failed"
    pub._record(
        event,
        current.get("by", ""),
        req,
        key=f"{req['id']}-{event}-v{version}",
        version=version,
        error=result.get("error"),
    )
    return final


@contextlib.contextmanager
def decision_lock(pub: Publishing) -> Iterator[None]:
    """Approvers' critical section on decisions (one lock file; bounded wait, then 409)."""
    shared = pub._shared()
    shared._mkdir(pub._decisions(), exist_ok=True)
    fd = open_lock(pub._decisions() / ".lock", shared.access)
    try:
        shared._flock_wait(fd, "publish requests")
        yield
    finally:
        os.close(fd)


def missing_packages(request_dir: Path, pkgs_dir: str) -> list[str]:
    """Locked conda packages no longer in their channel (``name version build``)."""
    lock = read_lock(request_dir)
    missing: list[str] = []
    remote: dict[str, list[dict[str, Any]]] = {}
    for entry in lock.get("conda", []):
        url = urlparse(entry.get("url") or "")
        if url.scheme == "file":
            if not Path(unquote(url.path)).is_file():
                missing.append(f"{entry['name']} {entry['version']} {entry['build']}")
        elif entry.get("channel"):
            remote.setdefault(entry["channel"], []).append(entry)
    if remote:
        missing += _missing_remote(remote, pkgs_dir)
    return missing


def _missing_remote(by_channel: dict[str, list[dict[str, Any]]], pkgs_dir: str) -> list[str]:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from rattler import Gateway, Platform

    async def query() -> list[str]:
        gateway = Gateway(cache_dir=Path(pkgs_dir) / "cache" / "repodata")
        gone = []
        for channel, entries in by_channel.items():
            names = sorted({e["name"] for e in entries})
            found = set()
            for records in await gateway.query(
                [channel], [Platform.current(), Platform("noarch")], names, recursive=False
            ):
                found |= {(r.name.normalized, str(r.version), str(r.build)) for r in records}
            gone += [
                f"{e['name']} {e['version']} {e['build']}"
                for e in entries
                if (e["name"], e["version"], e["build"]) not in found
            ]
        return gone

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, query()).result()


def _lock_mismatch(request_dir: Path, build_dir: Path) -> str | None:
    def key(lock: dict[str, Any]) -> tuple[set, set]:
        conda = {(e["name"], e["version"], e["build"]) for e in lock.get("conda", [])}
        pip = {(d["name"].lower(), d["version"]) for d in lock.get("pip", [])}
        return conda, pip

    try:
        want, got = key(read_lock(request_dir)), key(read_lock(build_dir))
    except (OSError, ValueError) as err:
        return str(err)
    if want == got:
        return None
    diff = sorted(" ".join(x) for x in (want[0] ^ got[0]) | (want[1] ^ got[1]))
    return ", ".join(diff[:10])


def _source(req: dict[str, Any]) -> dict[str, Any]:
    return {k: req["source"].get(k) for k in ("scope", "name", "version")}


def _readable(shared, name: str) -> bool:
    try:
        return shared.exists(name)
    except EnvManagerError:
        return False


def _copy(src: Path, dst: Path, mode: int) -> None:
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def _dir_mode(file_mode: int) -> int:
    """A request's directory: readable by whom its files are, writable by its requester only."""
    return 0o700 | (0o050 if file_mode & 0o040 else 0) | (0o005 if file_mode & 0o004 else 0)


def new_id() -> str:
    """A request's id: when it was made (UTC, to the second) and 6 random hex digits."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
