"""Publishing with approval: Draft -> Submit -> Review (diff + checks) -> Published / Rejected.

The first tests run as one user (the core, real builds from the tests' channel): the approver
is narrowed by ``c.EnvManager.approvers``. The last one is the team for real: three Unix users
(``ENVMGR_TEST_USERS=1``, run under ``flock /work/wt/users.lock``), the approvers' group owning
a ``2775`` shared root, and each door (CLI, REST) used by the user it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from helpers import build

from jupyter_env_manager.cli.commands import Progress
from jupyter_env_manager.core.errors import Conflict, Forbidden, NotFound, ValidationError
from jupyter_env_manager.core.runner import ForegroundRunner


def _draft(service, name="demo", **spec):
    service.runner = ForegroundRunner(service, Progress())
    body = {"scope": "local", "name": name, "conda": ["alpha=1.0"], "pip": ["envmgr-hello==1.0"]}
    env, started = service.envs.create({**body, **spec, "build": True})
    assert started.status == "succeeded", service.builds.read_log("local", name, 1)[0]
    return env


def _as_requester(service):
    service.settings.approvers = ["someone-else"]


def _as_approver(service):
    service.settings.approvers = []


def test_submit_review_approve_publishes_the_exact_lock(service):
    _draft(service)
    _as_requester(service)
    user = service.user
    assert service.info()["can_approve"] is False
    assert service.info()["can_approve_reason"] == f"{user} is not listed in c.EnvManager.approvers"
    env = service.envs.get("local", "demo")
    assert env["lifecycle"] == {"status": "draft", "detail": None, "request": None}
    assert env["actions"]["submit"] == {"allowed": True, "reason": None}

    # A direct copy is refused, naming the approval route; nothing is created.
    with pytest.raises(Forbidden) as refused:
        service.sharing.copy("local", "demo", "shared")
    assert refused.value.message == (
        f"You ({user}) may not copy 'demo' into the shared store directly: publishing needs an "
        "approver. Submit it for approval instead: jupyter envmgr submit demo --reason TEXT "
        "(REST: POST /env-manager/requests)"
    )
    assert not service.shared.exists("demo")

    with pytest.raises(ValidationError) as bad:
        service.publishing.submit("local", "demo", "  ")
    assert (bad.value.message, bad.value.field) == ("A reason is required ('reason')", "reason")
    assert not any(service.publishing.inbox().glob("2*"))

    req = service.publishing.submit("local", "demo", "team needs alpha")
    assert (req["status"], req["kind"], req["version"], req["requester"]) == (
        "pending",
        "new",
        1,
        user,
    )
    env = service.envs.get("local", "demo")
    assert env["lifecycle"]["status"] == "pending"
    assert env["actions"]["submit"]["allowed"] is False
    assert env["actions"]["withdraw"] == {"allowed": True, "reason": None}

    # The review: everything added (nothing published yet), conda and pip apart; checks pass.
    assert req["diff"]["from"] is None
    conda_added = {(p["name"], p["version"]) for p in req["diff"]["conda"]["added"]}
    assert {("alpha", "1.0"), ("ipykernel", conda_added and dict(conda_added)["ipykernel"])} <= (
        conda_added
    )
    assert req["diff"]["pip"]["added"] == [
        {"name": "envmgr-hello", "kind": "pip", "version": "1.0", "channel": None}
    ]
    assert [(c["check"], c["ok"], c["blocking"]) for c in req["checks"]] == [
        ("channels", True, False),
        ("blocked_packages", True, False),
        ("pip_direct", True, False),
    ]

    with pytest.raises(Forbidden) as refused:
        service.publishing.approve(req["id"])
    assert refused.value.message == (
        f"You ({user}) may not approve publish requests: {user} is not listed in "
        "c.EnvManager.approvers"
    )

    _as_approver(service)
    done = service.publishing.approve(req["id"])
    assert (done["status"], done["detail"]) == ("published", "published as v1")
    published = service.envs.get("shared", "demo")
    assert published["lifecycle"]["status"] == "published"
    assert published["version"] == 1
    mine = json.loads((service.local.build_dir("demo", 1) / "lock.json").read_text())
    theirs = json.loads((service.shared.build_dir("demo", 1) / "lock.json").read_text())
    assert mine == theirs
    with pytest.raises(Conflict) as twice:
        service.publishing.approve(req["id"])
    assert twice.value.message == f"Request {req['id']} is already approved (published)"
    events = [e["event"] for e in service.publishing.events(req["id"])["events"]]
    assert events == ["submitted", "approved", "published"]


def test_update_diff_outdated_reject_and_failed_versions(service):
    _draft(service)
    _as_approver(service)
    first = service.publishing.submit("local", "demo", "v1")
    service.publishing.approve(first["id"])

    # An update (alpha 2.0), with a failed build after it: the failed one leaves the draft and
    # its log goes into the request.
    service.envs.update("local", "demo", {"conda": ["alpha=2.0"]})
    assert build(service, "local", "demo").status == "succeeded"
    service.envs.update("local", "demo", {"conda": ["needs-missing"]})
    assert build(service, "local", "demo").status == "failed"
    env = service.envs.get("local", "demo")
    assert (env["lifecycle"]["status"], env["lifecycle"]["detail"]) == ("failed", "in use: v2")
    assert env["lifecycle"]["request"]["status"] == "published"  # v1's, the last request
    update = service.publishing.submit("local", "demo", "alpha 2")
    assert (update["kind"], update["version"], update["published_version"]) == ("update", 2, 1)
    assert update["removed_versions"][0]["version"] == 3
    assert update["logs"] == ["v3.txt"]
    assert service.local.versions("demo") == [1, 2]
    assert update["diff"]["from"] == {"scope": "shared", "name": "demo", "version": 1}
    assert update["diff"]["conda"]["upgraded"] == [
        {"name": "alpha", "kind": "conda", "from": "1.0", "to": "2.0",
         "channel": update["diff"]["conda"]["upgraded"][0]["channel"]}
    ]  # fmt: skip
    assert [p["name"] for p in update["diff"]["conda"]["added"]] == ["beta"]
    assert update["diff"]["pip"] == {
        "added": [], "removed": [], "upgraded": [], "downgraded": [], "rebuilt": []
    }  # fmt: skip

    # Rebuilt after submitting: outdated, cannot be approved.
    service.envs.update("local", "demo", {"conda": ["alpha=2.0", "gamma"]})
    assert build(service, "local", "demo").status == "succeeded"
    got = service.publishing.get(update["id"])
    assert (got["status"], got["detail"]) == (
        "outdated",
        "the draft was rebuilt after submitting (v4 has another lock)",
    )
    with pytest.raises(Conflict) as outdated:
        service.publishing.approve(update["id"])
    assert "is outdated" in outdated.value.message
    assert service.shared.active_version("demo") == 1

    # Resubmitted, then rejected with a reason that the draft shows.
    again = service.publishing.submit("local", "demo", "alpha 2 and gamma")
    assert service.publishing.get(update["id"])["status"] == "withdrawn"
    with pytest.raises(ValidationError):
        service.publishing.reject(again["id"], "")
    rejected = service.publishing.reject(again["id"], "gamma is not vetted")
    assert (rejected["status"], rejected["detail"]) == ("rejected", "gamma is not vetted")
    service.publishing._index = None
    env = service.envs.get("local", "demo")
    assert env["lifecycle"]["status"] == "rejected"
    assert env["lifecycle"]["detail"] == "gamma is not vetted"
    service.publishing.withdraw(again["id"])  # dismissed
    service.publishing._index = None
    assert service.envs.get("local", "demo")["lifecycle"]["status"] == "draft"

    with pytest.raises(NotFound) as unknown:
        service.publishing.get("20260101T000000-abcdef")
    assert unknown.value.message == "No publish request '20260101T000000-abcdef'"
    with pytest.raises(NotFound):
        service.publishing.approve("../../etc")


def test_policy_checks_flag_and_enforce(service):
    _draft(service, pip=["envmgr-hello==1.0"])
    _as_approver(service)
    service.settings.allowed_channels = ["conda-forge"]
    service.settings.blocked_packages = ["alpha<2"]
    req = service.publishing.submit("local", "demo", "policy")
    checks = {c["check"]: c for c in req["checks"]}
    assert checks["channels"]["ok"] is False and checks["channels"]["blocking"] is False
    assert checks["blocked_packages"]["items"] == ["alpha 1.0 (matches 'alpha<2')"]
    service.settings.enforce_policy = True
    with pytest.raises(Conflict) as refused:
        service.publishing.approve(req["id"])
    assert refused.value.message.startswith(f"Request {req['id']} fails the policy")
    assert "Blocked packages: alpha 1.0 (matches 'alpha<2')" in refused.value.message
    assert not service.shared.exists("demo")


def test_inbox_is_sticky_and_team_writable(service):
    _draft(service)
    _as_approver(service)
    os.makedirs(service.shared.root, exist_ok=True)
    os.chmod(service.shared.root, 0o2775)
    service.shared._access = None
    inbox = service.publishing.ensure()
    mode = stat.S_IMODE(inbox.stat().st_mode)
    assert mode & stat.S_ISVTX and mode & 0o777 == 0o777, oct(mode)
    req = service.publishing.submit("local", "demo", "x")
    rdir = Path(service.publishing.inbox()) / req["id"]
    assert stat.S_IMODE(rdir.stat().st_mode) & 0o022 == 0
    audit_files = list((inbox / ".audit").iterdir())
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o022 == 0 for p in audit_files)


# -- REST, one user (the approver narrowed by c.EnvManager.approvers) ---------------------------


async def test_rest_submit_review_approve_reject(jp_fetch, jp_serverapp, envmgr_settings):
    from test_api import call, create_and_build, expect_error, get_json
    from tornado.httpclient import HTTPClientError

    service = jp_serverapp.web_app.settings["env_manager"]
    service.settings.approvers = ["someone-else"]
    user = service.user
    await create_and_build(jp_fetch, "demo", conda=["alpha=1.0"], pip=["envmgr-hello==1.0"])
    info = await get_json(jp_fetch, "info")
    assert (info["can_approve"], info["publish_policy"]) == (False, "approval")

    refused = await expect_error(
        jp_fetch, 403, "POST", "environments", "local", "demo", "copy", body={"to": "shared"}
    )
    assert "Submit it for approval instead: jupyter envmgr submit demo" in refused["message"]
    bad = await expect_error(jp_fetch, 400, "POST", "requests", body={"name": "demo"})
    assert (bad["message"], bad["field"]) == ("A reason is required ('reason')", "reason")
    bad = await expect_error(
        jp_fetch, 400, "POST", "requests", body={"name": "demo", "reason": "x", "to": 1}
    )
    assert (bad["message"], bad["field"]) == ("Unknown field 'to'", "to")
    assert (await get_json(jp_fetch, "requests"))["requests"] == []

    r = await call(jp_fetch, "POST", "requests", body={"name": "demo", "reason": "for the team"})
    assert r.code == 201
    req = json.loads(r.body)
    assert r.headers["Location"].endswith(f"/env-manager/requests/{req['id']}")
    listed = await get_json(jp_fetch, "requests")
    assert (listed["pending"], [q["id"] for q in listed["requests"]]) == (1, [req["id"]])
    env = await get_json(jp_fetch, "environments", "local", "demo")
    assert env["lifecycle"]["status"] == "pending"

    refused = await expect_error(jp_fetch, 403, "POST", "requests", req["id"], "approve")
    assert refused["message"] == (
        f"You ({user}) may not approve publish requests: {user} is not listed in "
        "c.EnvManager.approvers"
    )
    unknown = await expect_error(jp_fetch, 404, "GET", "requests", "20200101T000000-000000")
    assert unknown["message"] == "No publish request '20200101T000000-000000'"

    service.settings.approvers = []
    await expect_error(jp_fetch, 404, "POST", "requests", "nope", "approve")
    r = await call(jp_fetch, "POST", "requests", req["id"], "approve")
    assert r.code == 202 and json.loads(r.body)["status"] == "publishing"
    deadline = time.monotonic() + 120
    while (got := await get_json(jp_fetch, "requests", req["id"]))["status"] == "publishing":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert (got["status"], got["detail"]) == ("published", "published as v1")
    assert [e["event"] for e in got["events"]] == ["submitted", "approved", "published"]
    assert all(e["who"] and e["account"] == user and e["at"] for e in got["events"])
    twice = await expect_error(jp_fetch, 409, "POST", "requests", req["id"], "approve")
    assert twice["message"] == f"Request {req['id']} is already approved (published)"
    shared = await get_json(jp_fetch, "environments", "shared", "demo")
    assert (shared["version"], shared["lifecycle"]["status"]) == (1, "published")

    # A second submit, rejected with a reason the draft shows.
    await call(jp_fetch, "PATCH", "environments", "local", "demo", body={"conda": ["alpha=2.0"]})
    r = await call(jp_fetch, "POST", "environments", "local", "demo", "builds")
    from test_api import wait_build

    assert (await wait_build(jp_fetch, "local", "demo", 2))["status"] == "succeeded"
    r = await call(jp_fetch, "POST", "requests", body={"name": "demo", "reason": "alpha 2"})
    update = json.loads(r.body)
    assert update["kind"] == "update"
    assert update["diff"]["conda"]["upgraded"][0]["name"] == "alpha"
    await expect_error(jp_fetch, 400, "POST", "requests", update["id"], "reject", body={})
    r = await call(jp_fetch, "POST", "requests", update["id"], "reject", body={"reason": "not yet"})
    assert json.loads(r.body)["status"] == "rejected"
    service.publishing._index = None
    env = await get_json(jp_fetch, "environments", "local", "demo")
    assert (env["lifecycle"]["status"], env["lifecycle"]["detail"]) == ("rejected", "not yet")
    events = (await get_json(jp_fetch, "audit"))["events"]
    assert [e["event"] for e in events] == [
        "submitted", "approved", "published", "submitted", "rejected"
    ]  # fmt: skip
    with pytest.raises(HTTPClientError):
        await call(jp_fetch, "POST", "requests", update["id"], "approve")


async def test_the_watcher_relays_requests_changed_elsewhere(jp_fetch, jp_serverapp):
    """A request submitted, withdrawn or rejected by another process (a teammate's server, the
    CLI) reaches this server's clients as the same ``request`` event, from the audit log; what
    this server did itself is emitted once, not relayed again."""
    from test_api import call, get_json

    from jupyter_env_manager.config import EnvManager
    from jupyter_env_manager.core.service import EnvService
    from jupyter_env_manager.server.events import EVENT_IDS

    events: list[dict] = []

    async def listener(logger, schema_id, data):
        events.append(dict(data))

    jp_serverapp.event_logger.add_listener(schema_id=EVENT_IDS["request"], listener=listener)
    server = jp_serverapp.web_app.settings["env_manager"]
    server.settings.approvers = ["someone-else"]
    await get_json(jp_fetch, "info")
    other = EnvService(EnvManager(config=jp_serverapp.config))  # as the CLI would
    other.settings.approvers = ["someone-else"]
    await asyncio.to_thread(_draft, other, "mine")

    async def seen(action, rid=None):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = [e for e in events if e["action"] == action and rid in (None, e["id"])]
            if found:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {action!r} event in {events}")

    # What is in the audit log when the watcher starts is history: act once it has looked.
    extension = next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_env_manager"]))
    while extension.watcher.requests._seen is None:
        await asyncio.sleep(0.05)
    first = other.publishing.submit("local", "mine", "from the CLI")
    (relayed,) = await seen("submitted", first["id"])
    assert relayed == {
        "action": "submitted",
        "id": first["id"],
        "name": "mine",
        "requester": server.user,
        "draft": "mine",
    }
    other.publishing.withdraw(first["id"])
    await seen("withdrawn", first["id"])

    # This server's own submit: one event, and the watcher's later rounds do not repeat it.
    r = await call(jp_fetch, "POST", "requests", body={"name": "mine", "reason": "from the panel"})
    own = json.loads(r.body)["id"]
    other.settings.approvers = []
    other.publishing.reject(own, "not now")
    await seen("rejected", own)
    assert [e["action"] for e in events if e["id"] == own] == ["submitted", "rejected"]
    assert [e["action"] for e in events if e["id"] == first["id"]] == ["submitted", "withdrawn"]
    # and the panel's next listing shows the rejection at once (no stale request cache)
    env = await get_json(jp_fetch, "environments", "local", "mine")
    assert (env["lifecycle"]["status"], env["lifecycle"]["detail"]) == ("rejected", "not now")


# -- three real users: a requester, an approver, a teammate -------------------------------------

from test_shared_store import (  # noqa: E402
    ALICE,
    BOB,
    CAROL,
    KERNEL_SCRIPT,
    as_user,
    needs_users,
    server_of,
    team,  # noqa: F401  (the fixture)
)


def _json(proc) -> dict:
    return json.loads(proc.stdout)


def _error_line(proc) -> str:
    return proc.stderr.strip().removeprefix("jupyter envmgr: error: ")


@needs_users
def test_a_team_publishes_with_approval(team):  # noqa: F811
    shared: Path = team["shared"]
    config = team["config"] / "jupyter_server_config.json"
    settings = json.loads(config.read_text())
    settings["EnvManager"]["approvers"] = [ALICE]  # Bob may write the root, but does not approve
    config.write_text(json.dumps(settings))
    inbox = shared / ".envmgr" / "requests"

    # Alice, the approver, opens the inbox: sticky and writable by everyone who reads the store.
    assert _json(as_user(team, ALICE, "info", "--json"))["can_approve"] is True
    assert _json(as_user(team, ALICE, "requests", "--json")) == {"requests": [], "pending": 0}
    st = inbox.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o3777, _uid(ALICE))
    carol_info = _json(as_user(team, CAROL, "info", "--json"))
    assert (carol_info["can_approve"], carol_info["publish_policy"]) == (False, "approval")
    assert carol_info["can_approve_reason"] == (
        f"{CAROL} cannot write the shared store {shared}: only its approvers (who may write its "
        "root) can publish"
    )

    # Carol, the requester, builds a draft; a direct copy is refused, naming the approval route.
    as_user(team, CAROL, "create", "demo", "--conda", "alpha=1.0", "--pip", "envmgr-hello==1.0",
            "--build")  # fmt: skip
    refused = as_user(team, CAROL, "copy", "demo", "--to", "shared", code=1)
    assert _error_line(refused) == (
        f"You ({CAROL}) may not copy 'demo' into the shared store directly: publishing needs an "
        "approver. Submit it for approval instead: jupyter envmgr submit demo --reason TEXT "
        "(REST: POST /env-manager/requests)"
    )
    req = _json(as_user(team, CAROL, "submit", "demo", "--reason", "the team needs alpha",
                        "--json"))  # fmt: skip
    rid = req["id"]
    assert (req["status"], req["kind"], req["requester"], req["version"]) == (
        "pending", "new", CAROL, 1,
    )  # fmt: skip
    draft = _json(as_user(team, CAROL, "show", "demo", "--json"))
    assert draft["lifecycle"]["status"] == "pending"

    # Approving as a non-approver: the CLI and REST say the same line.
    line = (
        f"You ({CAROL}) may not approve publish requests: {CAROL} cannot write the shared store "
        f"{shared}: only its approvers (who may write its root) can publish"
    )
    assert _error_line(as_user(team, CAROL, "approve", rid, code=1)) == line
    with server_of(team, CAROL) as call:
        assert call("POST", f"env-manager/requests/{rid}/approve") == (403, {"message": line})
        status, env = call("GET", "env-manager/environments/local/demo")
        assert env["actions"]["approve"] == {
            "allowed": False,
            "reason": line.split(": ", 1)[1],
        }

    # Alice reviews: against nothing published, every locked package is added; checks pass.
    lock = json.loads((Path(f"/home/{CAROL}/.conda/envs/.envmgr/envs/demo/builds/1/lock.json"))
                      .read_text())  # fmt: skip
    review = _json(as_user(team, ALICE, "review", rid, "--json"))
    assert review["diff"]["from"] is None
    assert review["diff"]["conda"]["added"] == [
        {"name": e["name"], "kind": "conda", "version": e["version"],
         "channel": e["channel"].rstrip("/")}
        for e in lock["conda"]
    ]  # fmt: skip
    assert review["diff"]["pip"]["added"] == [
        {"name": "envmgr-hello", "kind": "pip", "version": "1.0", "channel": None}
    ]
    assert review["checks"] == [
        {"check": "channels", "ok": True, "items": [], "blocking": False,
         "message": "No allowed_channels configured: every channel passes"},
        {"check": "blocked_packages", "ok": True, "items": [], "blocking": False,
         "message": "No blocked_packages configured"},
        {"check": "pip_direct", "ok": True, "items": [], "blocking": False,
         "message": "No pip requirement is a direct URL or a local path"},
    ]  # fmt: skip
    done = _json(as_user(team, ALICE, "approve", rid, "--json"))
    assert (done["status"], done["detail"], done["decided_by"]) == (
        "published", "published as v1", ALICE,
    )  # fmt: skip

    # Bob, a teammate, runs the published environment in a kernel, with its pip package.
    as_user(team, BOB, "sync-kernels")
    kernel = as_user(team, BOB, program=[sys.executable, "-c", KERNEL_SCRIPT, "envmgr-shared-demo"])
    in_use = os.path.realpath(shared / "demo")  # the version's own directory
    assert kernel.stdout.strip().splitlines()[-1:] == [f"1.0 {in_use}"], kernel.stderr

    # An update: the diff is against v1; Alice rejects it, Carol sees why on her draft.
    as_user(team, CAROL, "install", "alpha=2.0", "--env", "demo")
    update = _json(as_user(team, CAROL, "submit", "demo", "--reason", "alpha 2", "--json"))
    assert (update["kind"], update["published_version"]) == ("update", 1)
    review = _json(as_user(team, ALICE, "review", update["id"], "--json"))
    assert review["diff"]["from"] == {"scope": "shared", "name": "demo", "version": 1}
    channel = review["diff"]["conda"]["upgraded"][0]["channel"]
    assert review["diff"]["conda"] == {
        "added": [{"name": "beta", "kind": "conda", "version": "1.0", "channel": channel}],
        "removed": [],
        "upgraded": [{"name": "alpha", "kind": "conda", "from": "1.0", "to": "2.0",
                      "channel": channel}],
        "downgraded": [],
        "rebuilt": [],
    }  # fmt: skip
    assert review["diff"]["pip"] == dict.fromkeys(
        ("added", "removed", "upgraded", "downgraded", "rebuilt"), []
    )
    as_user(team, ALICE, "reject", update["id"], "--reason", "beta is not vetted")
    draft = _json(as_user(team, CAROL, "show", "demo", "--json"))
    assert draft["lifecycle"] == {
        "status": "rejected",
        "detail": "beta is not vetted",
        "request": {"id": update["id"], "status": "rejected", "detail": "beta is not vetted",
                    "error": None, "version": 2},
    }  # fmt: skip

    # Resubmitted, then rebuilt with another lock: outdated, it cannot be approved.
    third = _json(as_user(team, CAROL, "submit", "demo", "--reason", "vetted now", "--json"))
    as_user(team, CAROL, "install", "gamma", "--env", "demo")
    refused = as_user(team, ALICE, "approve", third["id"], code=1)
    assert _error_line(refused) == (
        f"Request {third['id']} is outdated (the draft was rebuilt after submitting (v3 has "
        "another lock)): the requester resubmits it"
    )

    # Bob cannot remove (nor withdraw) Carol's request: the inbox is sticky.
    removed = as_user(team, BOB, program=["rm", "-rf", str(inbox / third["id"])], code=1)
    assert "Permission denied" in removed.stderr  # its files: the directory is Carol's
    moved = as_user(team, BOB, program=["mv", str(inbox / third["id"]), str(inbox / "x")], code=1)
    assert "Operation not permitted" in moved.stderr  # the directory itself: the sticky bit
    assert (inbox / third["id"] / "request.json").exists()
    assert _error_line(as_user(team, BOB, "withdraw", third["id"], code=1)) == (
        f"You ({BOB}) may not withdraw request {third['id']}: only its requester ({CAROL}) may"
    )

    # Locked packages gone from the channel: the approve names them, nothing is published.
    fourth = _json(as_user(team, CAROL, "submit", "demo", "--reason", "with gamma", "--json"))
    gamma = next(e for e in json.loads(
        Path(f"/home/{CAROL}/.conda/envs/.envmgr/envs/demo/builds/3/lock.json").read_text()
    )["conda"] if e["name"] == "gamma")  # fmt: skip
    Path(gamma["url"].removeprefix("file://")).unlink()
    refused = as_user(team, ALICE, "approve", fourth["id"], code=1)
    assert _error_line(refused) == (
        f"The locked packages gamma {gamma['version']} {gamma['build']} are no longer in their "
        "channels: nothing was published"
    )
    assert _json(as_user(team, BOB, "show", "demo", "--shared", "--json"))["version"] == 1
    assert sorted(os.listdir(shared / ".envmgr" / "envs" / "demo" / "builds")) == ["1"]
    still = _json(as_user(team, CAROL, "review", fourth["id"], "--json"))
    assert (still["status"], still["error"]) == ("pending", _error_line(refused))

    # Bad input over REST: an unknown id, approving twice.
    with server_of(team, ALICE) as call:
        assert call("GET", "env-manager/requests/20200101T000000-000000") == (
            404, {"message": "No publish request '20200101T000000-000000'"},
        )  # fmt: skip
        assert call("POST", f"env-manager/requests/{rid}/approve") == (
            409, {"message": f"Request {rid} is already approved (published)", "item": rid},
        )  # fmt: skip
    assert _error_line(as_user(team, ALICE, "approve", rid, code=1)) == (
        f"Request {rid} is already approved (published)"
    )

    # The audit log has every event, with who and when; the team reads it.
    events = _json(as_user(team, BOB, "audit", "--json"))["events"]
    assert [(e["event"], e["who"], e["request"]) for e in events] == [
        ("submitted", CAROL, rid),
        ("approved", ALICE, rid),
        ("published", ALICE, rid),
        ("submitted", CAROL, update["id"]),
        ("rejected", ALICE, update["id"]),
        ("submitted", CAROL, third["id"]),
        ("outdated", CAROL, third["id"]),
        ("withdrawn", CAROL, third["id"]),
        ("submitted", CAROL, fourth["id"]),
        ("publish_failed", ALICE, fourth["id"]),
    ]
    assert all(e["at"] and e["account"] == e["who"] for e in events)
    for path in (inbox / ".audit").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def test_packages_gone_from_the_channel_publish_nothing(service, test_channel, tmp_path):
    import shutil

    channel = shutil.copytree(Path(test_channel.removeprefix("file://")), tmp_path / "chan")
    service.settings.channels = [channel.as_uri()]
    _draft(service)
    _as_approver(service)
    req = service.publishing.submit("local", "demo", "alpha")
    lock = json.loads((service.local.build_dir("demo", 1) / "lock.json").read_text())
    alpha = next(e for e in lock["conda"] if e["name"] == "alpha")
    Path(alpha["url"].removeprefix("file://")).unlink()
    with pytest.raises(Conflict) as gone:
        service.publishing.approve(req["id"])
    assert gone.value.message == (
        f"The locked packages alpha 1.0 {alpha['build']} are no longer in their channels: "
        "nothing was published"
    )
    assert not service.shared.exists("demo")
    got = service.publishing.get(req["id"])
    assert (got["status"], got["error"]) == ("pending", gone.value.message)
    assert [e["event"] for e in got["events"]] == ["submitted", "publish_failed"]


def test_an_unknown_status_filter_is_a_400(service):
    """Found by the fuzz: ``GET requests?status=...`` with a status outside the enum was a 200."""
    from jupyter_env_manager.core.errors import ValidationError as Invalid

    for status in ("nonsense", ""):
        with pytest.raises(Invalid) as refused:
            service.publishing.list_requests(status)
        assert refused.value.field == "status" and repr(status) in refused.value.message


def test_a_refused_submit_leaves_the_draft_as_it_was(service, envmgr_settings):
    """Found by the fuzz: submitting a saved, never built environment was a 400 that left the
    environment's lock file behind (made on the first lock); now it comes with the environment."""
    service.envs.create({"name": "unbuilt", "conda": ["alpha"]})
    env_dir = Path(envmgr_settings["local_root"]) / ".envmgr" / "envs" / "unbuilt"
    before = sorted(p.relative_to(env_dir) for p in env_dir.rglob("*"))
    with pytest.raises(ValidationError) as refused:
        service.publishing.submit("local", "unbuilt", "please")
    assert refused.value.field == "name" and "no successful version" in refused.value.message
    assert sorted(p.relative_to(env_dir) for p in env_dir.rglob("*")) == before
