"""Publishing with approval: a draft is submitted, an approver reviews it and publishes its exact
lock into the shared store, or rejects it with a reason.

Where things live, and who may write them (the filesystem is what enforces the roles)::

    <requests_root>/                 the inbox: every team member may write, sticky (like /tmp)
      <id>/                          one request, made by its requester (tmp + rename), read by
        request.json                 the team, writable by the requester only: who, why, when,
        lock.json rattler-lock.yml   the submitted version and its lock's sha256; the lock
        spec.json logs/v<N>.txt      itself; logs of the failed versions removed on submit
        withdrawn.json outdated.json written later by the requester's own processes
      .audit/<event>.json            one file per event (:mod:`.audit`), sticky
    <shared_root>/.envmgr/decisions/<id>.json   approved/rejected/published: approvers only

A request's status is computed from these files: ``pending``, ``outdated`` (the draft was rebuilt
after submitting: its lock's sha256 differs), ``publishing``, ``published``, ``rejected``,
``withdrawn``. Approving installs exactly the submitted lock into the shared store through the
same lock-exact copy as :meth:`.sharing.Sharing.copy` (a ``copy`` build whose source is the
request's directory: conda records relinked, the pip layer reinstalled at its locked versions),
which verifies it before it is put in use; only then is the request ``published``. A publish that
fails leaves the published version as it was and the request open with the error.
"""

from __future__ import annotations

import grp
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import audit
from .actions import NO_SHARED
from .errors import Conflict, EnvManagerError, Forbidden, NotFound, ValidationError
from .lockfile import lock_records, read_lock
from .packages import diff_packages, lock_packages
from .policy import run_checks
from .publish_views import DecorateContext as DecorateContext  # where the listing finds it
from .publish_views import RequestViews
from .records import now, read_json, write_json
from .request_watch import request_event
from .store import Store

if TYPE_CHECKING:
    from .service import EnvService

ID_RE = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")
OPEN = ("pending", "outdated", "publishing")
REASON_MAX = 2000
LOCK_FILES = ("lock.json", "rattler-lock.yml", "spec.json")


def lock_sha256(build_dir: Path) -> str:
    return hashlib.sha256((build_dir / "lock.json").read_bytes()).hexdigest()


def check_reason(reason: Any, field: str = "reason") -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError(f"A reason is required ('{field}')", field=field)
    if len(reason) > REASON_MAX:
        raise ValidationError(
            f"'{field}' is longer than {REASON_MAX} characters", field=field, item=reason[:80]
        )
    return reason.strip()


REQUEST_STATUSES = ("pending", "outdated", "publishing", "published", "rejected", "withdrawn")


class Publishing(RequestViews):
    def __init__(self, service: EnvService):
        self.svc = service
        self._index: tuple[float, list[dict[str, Any]]] | None = None
        self.emitted: set[str] = set()  # ids of the audit events this process wrote

    # -- places ------------------------------------------------------------------------------

    def _shared(self) -> Store:
        return self.svc.store("shared")  # 400 when no shared store is configured

    def inbox(self) -> Path:
        shared = self._shared()
        configured = self.svc.settings.requests_root
        return Path(configured) if configured else shared.meta / "requests"

    def _decisions(self) -> Path:
        return self._shared().meta / "decisions"

    def _team_dir(self, path: Path) -> None:
        """mkdir a directory every reader of the store may write, sticky (like /tmp)."""
        access = self._shared().access
        bits = access.bits if access else 0o055
        mode = stat.S_ISVTX | 0o700
        mode |= 0o070 if bits & 0o040 else 0
        mode |= 0o007 if bits & 0o004 else 0
        if access is not None and access.setgid:
            mode |= stat.S_ISGID
        try:
            path.mkdir()
        except FileExistsError:
            return
        os.chmod(path, mode)

    def ensure(self) -> Path:
        """The inbox and its audit directory, made if missing (by whoever may)."""
        inbox, shared = self.inbox(), self._shared()
        try:
            if not inbox.is_dir():
                if shared.meta in inbox.parents:
                    shared.ensure()
                inbox.parent.mkdir(parents=True, exist_ok=True)
                self._team_dir(inbox)
            if not (inbox / ".audit").is_dir():
                self._team_dir(inbox / ".audit")
        except PermissionError:
            raise Forbidden(
                f"The publish requests inbox {inbox} does not exist and you ({self.svc.user}) "
                f"may not create it: an approver's server makes it on first use, or an admin: "
                f"mkdir -m 3777 {inbox}"
            ) from None
        return inbox

    def forget(self) -> None:
        """Drop what is cached of the requests (another process changed them)."""
        self._index = None

    def _file_mode(self) -> int:
        access = self._shared().access
        return access.file_mode() if access else 0o644

    def _record(self, event: str, who: str, req: dict[str, Any], key: str | None = None, **more):
        data = {"request": req["id"], "name": req["name"], "requester": req["requester"], **more}
        draft = (req.get("source") or {}).get("name")
        if isinstance(draft, str):
            data["draft"] = draft
        try:
            directory = self.inbox() / ".audit"
            entry = audit.record(directory, event, who, self._file_mode(), key, **data)
        except OSError as err:  # the action happened: a missing audit line is logged loudly
            self.svc.log.error("jupyter_env_manager: audit event %s not written: %s", event, err)
        else:
            # Emitted here and now: the store watcher must not relay it a second time.
            written = entry["id"] if entry is not None else key
            if written:
                self.emitted.add(written)
        self._index = None
        self.svc.emit("request", request_event(data | {"event": event}))

    # -- who may approve ---------------------------------------------------------------------

    def can_approve(self, actor: str | None = None, groups: list[str] | None = None):
        """(allowed, reason): this server may write the shared root, narrowed by ``approvers``.

        The server's user is who is judged (its permissions publish; on JupyterHub it is the
        hub user); the door's identity (``actor``) and its ``groups`` count too when listed."""
        user = self.svc.user
        shared = self.svc.shared
        if shared is None:
            return False, NO_SHARED
        if shared.write_denial() is not None:
            return False, (
                f"{user} cannot write the shared store {shared.root}: only its approvers (who "
                "may write its root) can publish"
            )
        approvers = list(self.svc.settings.approvers)
        if not approvers:
            return True, f"You can write the shared store {shared.root}"
        if user in approvers or (actor and actor in approvers):
            return True, "c.EnvManager.approvers lists you"
        mine = set(groups or []) | {_group_name(g) for g in os.getgroups()}
        for entry in approvers:
            if entry.startswith("@"):
                group = entry[1:]
                if group in mine or user in _members(group):
                    return True, f"You are in {entry}, listed in c.EnvManager.approvers"
        return False, f"{user} is not listed in c.EnvManager.approvers"

    def check_approver(self, actor: str, groups: list[str] | None = None) -> None:
        """403 with one line, the same in every door (it names the server's user)."""
        allowed, reason = self.can_approve(actor, groups)
        if not allowed:
            raise Forbidden(f"You ({self.svc.user}) may not approve publish requests: {reason}")

    def policy(self, actor: str | None = None) -> str:
        configured = self.svc.settings.publish_policy
        return configured or ("direct" if self.can_approve(actor)[0] else "approval")

    def check_direct_copy(self, name: str, actor: str | None = None) -> None:
        """The 403 of copy-to-shared for a non-approver under the 'approval' policy."""
        actor = self.svc.actor(actor)
        if self.policy(actor) == "approval" and not self.can_approve(actor)[0]:
            raise Forbidden(
                f"You ({actor}) may not copy {name!r} into the shared store directly: "
                "publishing needs an approver. Submit it for approval instead: "
                f"jupyter envmgr submit {name} --reason TEXT (REST: POST /env-manager/requests)",
                item=name,
            )

    def info(self, actor: str | None = None) -> dict[str, Any]:
        allowed, reason = self.can_approve(actor)
        inbox = None
        if self.svc.shared is not None:
            inbox = str(self.inbox())
        return {
            "can_approve": allowed,
            "can_approve_reason": reason,
            "publish_policy": self.policy(actor) if self.svc.shared else None,
            "requests_root": inbox,
        }

    # -- reading requests --------------------------------------------------------------------

    def _dir(self, rid: Any) -> Path:
        if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
            raise NotFound(f"No publish request {str(rid)[:80]!r}")
        return self.inbox() / rid

    def _read(self, rid: Any) -> dict[str, Any]:
        data = read_json(self._dir(rid) / "request.json")
        if not isinstance(data, dict):
            raise NotFound(f"No publish request {rid!r}")
        return data

    def _all(self) -> list[dict[str, Any]]:
        try:
            entries = [e.name for e in os.scandir(self.inbox()) if ID_RE.fullmatch(e.name)]
        except FileNotFoundError:
            return []
        out = []
        for rid in entries:
            data = read_json(self.inbox() / rid / "request.json")
            if isinstance(data, dict):
                out.append(data)
        out.sort(key=lambda r: (str(r.get("created_at")), r["id"]), reverse=True)  # newest first
        return out

    def _decision(self, rid: str) -> dict[str, Any] | None:
        return read_json(self._decisions() / f"{rid}.json")

    def _write_decision(self, rid: str, data: dict[str, Any]) -> None:
        shared = self._shared()
        shared._mkdir(self._decisions(), exist_ok=True)
        write_json(self._decisions() / f"{rid}.json", data, self._file_mode())
        self._index = None

    def status(self, req: dict[str, Any]) -> dict[str, Any]:
        """``{"status", "detail", "error", "decision"}`` of a request, from its files."""
        rdir = self.inbox() / req["id"]
        decision = self._decision(req["id"])
        if decision and decision.get("state") == "publishing":
            decision = self.settle(req, decision)
        state = (decision or {}).get("state")
        out: dict[str, Any] = {
            "status": "pending",
            "detail": None,
            "error": None,
            "decision": decision,
        }
        if decision is not None and state == "published":
            return {**out, "status": "published", "detail": f"published as v{decision['version']}"}
        if state == "publishing":
            return {**out, "status": "publishing"}
        withdrawn = read_json(rdir / "withdrawn.json")
        if decision is not None and state == "rejected":
            return {
                **out,
                "status": "rejected",
                "detail": decision.get("reason"),
                "dismissed": bool(withdrawn),
            }
        if decision is not None and state == "failed":
            out["error"] = decision.get("error")
        if withdrawn:
            return {**out, "status": "withdrawn", "detail": withdrawn.get("note")}
        outdated = self._outdated(req)
        if outdated:
            return {**out, "status": "outdated", "detail": outdated}
        return out

    def _source_store(self, source: dict[str, Any]) -> Store | None:
        for store in (self.svc.local, self.svc.shared):
            if store is not None and store.scope == source.get("scope"):
                if str(store.root) == source.get("root"):
                    return store
        return None

    def _outdated(self, req: dict[str, Any]) -> str | None:
        """Why the request is outdated (its draft was rebuilt, or deleted), or None."""
        rdir = self.inbox() / req["id"]
        mark = read_json(rdir / "outdated.json")
        if mark:
            return mark.get("reason")
        store = self._source_store(req["source"])
        if store is None:
            return None  # another user's draft: their processes mark it
        name = req["source"]["name"]
        try:
            latest = _latest_success(store, name) if store.exists(name) else None
        except (OSError, EnvManagerError):
            return None
        if latest is None:
            reason = f"the draft {name!r} was deleted after submitting"
        elif lock_sha256(store.build_dir(name, latest)) != req["lock_sha256"]:
            reason = f"the draft was rebuilt after submitting (v{latest} has another lock)"
        else:
            return None
        if os.access(rdir, os.W_OK):
            write_json(rdir / "outdated.json", {"reason": reason, "at": now()}, self._file_mode())
            self._record(
                "outdated", req["requester"], req, key=f"{req['id']}-outdated", reason=reason
            )
        return reason

    def summary(self, req: dict[str, Any]) -> dict[str, Any]:
        st = self.status(req)
        decision = st.pop("decision") or {}
        return {
            **{
                k: req.get(k)
                for k in (
                    "id",
                    "name",
                    "kind",
                    "requester",
                    "reason",
                    "created_at",
                    "version",
                    "lock_sha256",
                    "published_version",
                )
            },
            "source": {k: req["source"].get(k) for k in ("scope", "name", "version")},
            **st,
            "decided_by": decision.get("by"),
            "decided_at": decision.get("at"),
        }

    def list_requests(self, status: str | None = None, actor: str | None = None) -> dict:
        if self.svc.shared is None:
            raise ValidationError(NO_SHARED, field="scope", item="shared")
        if self.can_approve(actor)[0]:
            self.ensure()
        if status is not None and status not in REQUEST_STATUSES:
            raise ValidationError(
                f"Unknown request status {status!r}: one of {', '.join(REQUEST_STATUSES)}",
                field="status",
                item=status,
            )
        items = [self.summary(r) for r in self._all()]
        if status:
            items = [i for i in items if i["status"] == status]
        return {"requests": items, "pending": sum(i["status"] == "pending" for i in items)}

    def get(self, rid: Any, actor: str | None = None) -> dict[str, Any]:
        """A request for review: its summary, the diff against the published version, the
        policy checks, its size and the logs it carries, and its audit events."""
        req = self._read(rid)
        rdir = self.inbox() / req["id"]
        out = self.summary(req)
        out["diff"] = self.diff(req)
        out["checks"] = self.checks(req)
        out["size"] = req.get("size")
        out["removed_versions"] = req.get("removed_versions", [])
        out["logs"] = sorted(p.name for p in (rdir / "logs").glob("v*.txt"))
        out["events"] = audit.events(self.inbox() / ".audit", req["id"])
        return out

    def diff(self, req: dict[str, Any]) -> dict[str, Any]:
        """The request's lock against the published version of its name, conda and pip apart."""
        shared, name = self._shared(), req["name"]
        after = lock_packages(self.inbox() / req["id"], name)
        before: list[dict[str, Any]] = []
        base = None
        version = shared.active_version(name) if shared.exists(name) else None
        if version:
            before = lock_packages(shared.build_dir(name, version), name)
            base = {"scope": "shared", "name": name, "version": version}
        channels = {(p["kind"], p["name"]): p["channel"] for p in before + after}
        out: dict[str, Any] = {"from": base, "to": {"request": req["id"], "name": name}}
        for kind in ("conda", "pip"):
            part = diff_packages(
                [p for p in before if p["kind"] == kind], [p for p in after if p["kind"] == kind]
            )
            for entries in part.values():
                for entry in entries:
                    entry["channel"] = channels.get((kind, entry["name"]))
            out[kind] = part
        return out

    def checks(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        rdir, s = self.inbox() / req["id"], self.svc.settings
        spec = read_json(rdir / "spec.json", {}) or {}
        return run_checks(
            read_lock(rdir),
            lock_records(rdir),
            list(spec.get("pip") or []),
            list(s.allowed_channels),
            list(s.blocked_packages),
            bool(s.enforce_policy),
        )

    def events(self, rid: str | None = None) -> dict[str, Any]:
        if rid is not None:
            self._read(rid)
        return {"events": audit.events(self.inbox() / ".audit", rid)}

    # -- the requester's verbs ---------------------------------------------------------------

    def submit(self, scope: Any, name: Any, reason: Any, actor: str | None = None) -> dict:
        """Submit the latest successful version of a draft for review."""
        from .publish_ops import submit

        return submit(self, scope, name, reason, self.svc.actor(actor))

    def submit_body(self, body: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Submit from a REST body ``{"scope"?, "name", "reason"}`` (400 for other fields)."""
        unknown = sorted(set(body) - {"scope", "name", "reason"})
        if unknown:
            raise ValidationError(f"Unknown field {unknown[0]!r}", field=unknown[0])
        if "name" not in body:
            raise ValidationError("'name' is required: the environment to submit", field="name")
        return self.submit(body.get("scope", "local"), body["name"], body.get("reason"), actor)

    def withdraw(self, rid: Any, actor: str | None = None) -> dict[str, Any]:
        """Withdraw a pending request (or dismiss a rejected one): its requester only."""
        actor = self.svc.actor(actor)
        req = self._read(rid)
        rdir = self.inbox() / req["id"]
        if not os.access(rdir, os.W_OK) or not (req["requester"] == actor or self.is_mine(req)):
            raise Forbidden(
                f"You ({actor}) may not withdraw request {req['id']}: only its requester "
                f"({req['requester']}) may",
                item=req["id"],
            )
        st = self.status(req)
        if st["status"] not in ("pending", "outdated", "rejected") or st.get("dismissed"):
            raise Conflict(
                f"Request {req['id']} is {st['status']}: it cannot be withdrawn", item=req["id"]
            )
        note = "dismissed" if st["status"] == "rejected" else "withdrawn by the requester"
        write_json(
            rdir / "withdrawn.json", {"by": actor, "at": now(), "note": note}, self._file_mode()
        )
        self._record("withdrawn", actor, req, note=note)
        return self.get(req["id"])

    # -- the approver's verbs ----------------------------------------------------------------

    def approve(self, rid: Any, actor: str | None = None, groups: list[str] | None = None):
        from .publish_ops import approve

        return approve(self, rid, self.svc.actor(actor), groups)

    def reject(self, rid: Any, reason: Any, actor: str | None = None, groups=None) -> dict:
        actor = self.svc.actor(actor)
        self.check_approver(actor, groups)
        reason = check_reason(reason)
        req = self._read(rid)
        with self.decision_lock():
            st = self.status(req)
            if st["status"] not in ("pending", "outdated"):
                raise Conflict(
                    f"Request {req['id']} is {st['status']}: it cannot be rejected", item=req["id"]
                )
            self._write_decision(
                req["id"], {"state": "rejected", "by": actor, "at": now(), "reason": reason}
            )
        self._record("rejected", actor, req, reason=reason)
        return self.get(req["id"])

    def decision_lock(self):
        from .publish_ops import decision_lock

        return decision_lock(self)

    def settle(self, req: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        from .publish_ops import settle

        return settle(self, req, decision)

    # -- environments' lifecycle -------------------------------------------------------------

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """A build ended in this process: mark this user's requests from it outdated, record
        the result of a publish."""
        if kind != "build" or data.get("action") != "finished" or self.svc.shared is None:
            return
        try:
            for req in self._all():
                if data["scope"] == "local" and req["source"].get("name") == data["name"]:
                    if self.is_mine(req):
                        self.status(req)
                elif data["scope"] == "shared" and req["name"] == data["name"]:
                    decision = self._decision(req["id"])
                    if decision and decision.get("state") == "publishing":
                        self.settle(req, decision)
        except (OSError, EnvManagerError) as err:
            self.svc.log.warning("jupyter_env_manager: requests not updated: %s", err)


def _latest_success(store: Store, name: str) -> int | None:
    for version in reversed(store.versions(name)):
        try:
            build = store.read_build(name, version)
        except NotFound:
            continue
        if build.status == "succeeded" and (store.build_dir(name, version) / "lock.json").exists():
            return version
    return None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _members(group: str) -> set[str]:
    try:
        return set(grp.getgrnam(group).gr_mem)
    except KeyError:
        return set()
