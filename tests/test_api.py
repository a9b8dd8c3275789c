"""The REST API over real HTTP (pytest-jupyter), real builds from the local test channel."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from killloop import workers
from tornado.httpclient import HTTPClientError

from jupyter_env_manager import __version__
from jupyter_env_manager.server.events import EVENT_IDS
from jupyter_env_manager.testing.channel import PackageDef, build_channel

NS = "env-manager"
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


async def call(jp_fetch, method, *path, body=None, **params):
    kwargs = {"method": method}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method in ("POST", "PATCH"):
        kwargs["body"] = "{}"
    if params:
        kwargs["params"] = params
    response = await jp_fetch(NS, *path, **kwargs)
    return response


async def get_json(jp_fetch, *path, **params):
    return json.loads((await call(jp_fetch, "GET", *path, **params)).body)


async def expect_error(jp_fetch, status, method, *path, body=None, match="", **params):
    with pytest.raises(HTTPClientError) as info:
        await call(jp_fetch, method, *path, body=body, **params)
    assert info.value.code == status, info.value.response.body
    payload = json.loads(info.value.response.body)
    assert match in payload["message"], payload
    return payload


async def wait_build(jp_fetch, scope, name, version, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        build = await get_json(jp_fetch, "environments", scope, name, "builds", str(version))
        if build["status"] in TERMINAL:
            return build
        await asyncio.sleep(0.05)
    raise AssertionError(f"build {scope}/{name} v{version} did not finish")


async def create_and_build(jp_fetch, name, scope="local", **spec):
    r = await call(jp_fetch, "POST", "environments", body={"name": name, "scope": scope, **spec})
    assert r.code == 201
    r = await call(jp_fetch, "POST", "environments", scope, name, "builds")
    assert r.code == 202
    build = json.loads(r.body)["build"]
    return await wait_build(jp_fetch, scope, name, build["version"])


async def test_info(jp_fetch, envmgr_settings):
    info = await get_json(jp_fetch, "info")
    assert info["version"] == __version__
    assert info["local_root"] == envmgr_settings["local_root"]
    assert info["shared_root"] == envmgr_settings["shared_root"]
    assert info["channels"] == envmgr_settings["channels"]
    assert info["engine"]["name"] == "py-rattler" and info["engine"]["version"]
    assert info["user"]


async def test_unauthenticated_requests_are_refused(http_server_client, jp_base_url):
    for method, path, body in [
        ("GET", "info", None),
        ("GET", "environments", None),
        ("POST", "environments", json.dumps({"name": "x"})),
        ("DELETE", "environments/local/x", None),
    ]:
        url = f"{jp_base_url}{NS}/{path}"
        response = await http_server_client.fetch(url, method=method, body=body, raise_error=False)
        assert response.code == 403, (method, path, response.code)
        assert json.loads(response.body)["message"]


async def test_create_build_and_follow_the_log(jp_fetch, jp_serverapp):
    r = await call(
        jp_fetch,
        "POST",
        "environments",
        body={
            "name": "web",
            "display_name": "Web env",
            "conda": ["alpha", "delta"],
            "pip": ["envmgr-hello==2.0"],
        },
    )
    assert r.code == 201
    assert r.headers["Location"].endswith(f"/{NS}/environments/local/web")
    env = json.loads(r.body)
    assert env["status"] == "saved" and env["version"] is None and env["managed"] is True
    assert env["spec"]["conda"] == ["alpha", "delta"] and env["display_name"] == "Web env"

    r = await call(jp_fetch, "POST", "environments", "local", "web", "builds")
    assert r.code == 202
    build = json.loads(r.body)["build"]
    assert build["version"] == 1 and build["status"] == "queued"

    # follow the log with the offset protocol until the build ends
    async def log_from(offset):
        return await call(
            jp_fetch, "GET", "environments", "local", "web", "builds", "1", "log",
            offset=str(offset),
        )  # fmt: skip

    offset, text = 0, ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = await log_from(offset)
        assert r.headers["Content-Type"].startswith("text/plain")
        chunk = r.body.decode()
        assert int(r.headers["X-Log-Offset"]) == offset + len(r.body)
        assert chunk == "" or chunk.endswith("\n")  # whole lines only
        text += chunk
        offset = int(r.headers["X-Log-Offset"])
        b = await get_json(jp_fetch, "environments", "local", "web", "builds", "1")
        if b["status"] in TERMINAL:
            text += (await log_from(offset)).body.decode()
            break
        await asyncio.sleep(0.02)
    assert b["status"] == "succeeded", b
    for phase in ("== solve ==", "== link ==", "== pip ==", "== verify ==", "== kernel =="):
        assert phase in text
    assert "build succeeded" in text
    full = await call(jp_fetch, "GET", "environments", "local", "web", "builds", "1", "log")
    assert full.body.decode() == text
    env = await get_json(jp_fetch, "environments", "local", "web")
    assert env["status"] == "ready" and env["version"] == 1
    assert env["kernel"] == {"name": "envmgr-web", "display_name": "Web env", "active": True}
    assert [v["version"] for v in env["versions"]] == [1]
    specs = await jp_fetch("api", "kernelspecs")
    assert "envmgr-web" in json.loads(specs.body)["kernelspecs"]
    listing = await get_json(jp_fetch, "environments")
    assert [e["name"] for e in listing["environments"]] == ["web"]
    assert (await get_json(jp_fetch, "environments", scope="shared"))["environments"] == []
    builds = await get_json(jp_fetch, "environments", "local", "web", "builds")
    assert builds["builds"][0]["status"] == "succeeded"


async def test_patch_export_import_revert_copy_delete(jp_fetch):
    assert (await create_and_build(jp_fetch, "ops", conda=["alpha=1.0"]))["status"] == "succeeded"
    r = await call(
        jp_fetch,
        "PATCH",
        "environments",
        "local",
        "ops",
        body={"conda": ["alpha=2.0"], "description": "newer"},
    )
    env = json.loads(r.body)
    assert env["spec"]["conda"] == ["alpha=2.0"] and env["description"] == "newer"
    assert env["version"] == 1  # the spec changed; the version in use did not
    b = json.loads((await call(jp_fetch, "POST", "environments", "local", "ops", "builds")).body)
    assert (await wait_build(jp_fetch, "local", "ops", b["build"]["version"]))[
        "status"
    ] == "succeeded"

    r = await call(
        jp_fetch, "GET", "environments", "local", "ops", "export", format="environment.yml"
    )
    assert "alpha=2.0" in r.body.decode() and "attachment" in r.headers["Content-Disposition"]
    lock = json.loads(
        (await call(jp_fetch, "GET", "environments", "local", "ops", "export", format="lock")).body
    )
    assert {e["name"]: e["version"] for e in lock["conda"]}["alpha"] == "2.0"
    explicit = (
        await call(jp_fetch, "GET", "environments", "local", "ops", "export", format="explicit")
    ).body.decode()
    assert "@EXPLICIT" in explicit

    r = await call(
        jp_fetch,
        "POST",
        "environments",
        "import",
        body={
            "name": "imported",
            "environment_yml": "dependencies:\n  - alpha=1.0\n  - pip:\n    - envmgr-hello==1.0\n",
            "build": True,
        },
    )
    assert r.code == 201
    imported = json.loads(r.body)
    assert imported["spec"]["pip"] == ["envmgr-hello==1.0"]
    assert imported["status"] == "building"
    assert (await wait_build(jp_fetch, "local", "imported", 1))["status"] == "succeeded"

    r = await call(jp_fetch, "POST", "environments", "local", "ops", "revert", body={"version": 1})
    assert r.code == 202
    revert = json.loads(r.body)["build"]
    assert revert["kind"] == "revert" and revert["version"] == 3
    assert (await wait_build(jp_fetch, "local", "ops", 3))["status"] == "succeeded"
    lock = json.loads(
        (await call(jp_fetch, "GET", "environments", "local", "ops", "export", format="lock")).body
    )
    assert {e["name"]: e["version"] for e in lock["conda"]}["alpha"] == "1.0"

    r = await call(
        jp_fetch,
        "POST",
        "environments",
        "local",
        "ops",
        "copy",
        body={"to": "shared", "name": "team-ops"},
    )
    assert r.code == 202
    payload = json.loads(r.body)
    assert (
        payload["environment"]["scope"] == "shared" and payload["environment"]["name"] == "team-ops"
    )
    assert (await wait_build(jp_fetch, "shared", "team-ops", payload["build"]["version"]))[
        "status"
    ] == "succeeded"
    shared = await get_json(jp_fetch, "environments", scope="shared")
    assert [(e["name"], e["status"]) for e in shared["environments"]] == [("team-ops", "ready")]

    r = await call(jp_fetch, "POST", "environments", "shared", "team-ops", "deactivate")
    assert json.loads(r.body)["kernel"]["active"] is False
    r = await call(jp_fetch, "POST", "environments", "shared", "team-ops", "activate")
    assert json.loads(r.body)["kernel"]["active"] is True

    r = await call(jp_fetch, "DELETE", "environments", "local", "ops")
    assert r.code == 204
    await expect_error(
        jp_fetch, 404, "GET", "environments", "local", "ops", match="No environment 'ops'"
    )


# (status, method, path, body, query, message) of a request that must fail, and create nothing
BAD_INPUT = [
    (400, "POST", "environments", {"name": "../x"}, {}, "Invalid environment name '../x'"),
    (
        400,
        "POST",
        "environments",
        {"name": "ok", "conda": ["alpha", "--channel=evil"]},
        {},
        "'--channel=evil'",
    ),
    (
        400,
        "POST",
        "environments",
        {"name": "ok", "pip": ["-r /etc/passwd"]},
        {},
        "'-r /etc/passwd'",
    ),
    (400, "POST", "environments", {"name": "ok", "colour": 1}, {}, "Unknown field 'colour'"),
    (
        400,
        "POST",
        "environments",
        {"name": "ok", "conda": "x y z w"},
        {},
        "Invalid conda package spec 'x y z w'",
    ),
    (400, "GET", "environments", None, {"scope": "elsewhere"}, "Invalid scope"),
    (400, "GET", "environments/nowhere/x", None, {}, "Invalid scope"),
    (
        400,
        "POST",
        "environments/import",
        {"environment_yml": "name: [unclosed"},
        {},
        "not valid YAML",
    ),
    (404, "GET", "environments/local/ghost", None, {}, "No environment 'ghost'"),
    (404, "PATCH", "environments/local/ghost", {}, {}, "ghost"),
    (404, "DELETE", "environments/local/ghost", None, {}, "ghost"),
    (404, "POST", "environments/local/ghost/builds", None, {}, "ghost"),
]
# the same against an environment "dup" that exists but was never built
NOT_BUILT = [
    (409, "POST", "environments", {"name": "dup"}, {}, "already exists"),
    (404, "GET", "environments/local/dup/builds/7", None, {}, "has no version 7"),
    (400, "GET", "environments/local/dup/builds/x", None, {}, "Invalid version 'x'"),
    (400, "GET", "environments/local/dup/builds/1/log", None, {"offset": "-3"}, "Invalid offset"),
    (400, "POST", "environments/local/dup/activate", None, {}, "no built version"),
    (400, "POST", "environments/local/dup/copy", {"to": "shared"}, {}, "no built version to copy"),
    (400, "POST", "environments/local/dup/copy", {}, {}, "'to' is required"),
    (400, "POST", "environments/local/dup/revert", {}, {}, "'version' is required"),
    (404, "POST", "environments/local/dup/revert", {"version": 4}, {}, "no version 4"),
    (400, "GET", "environments/local/dup/export", None, {"format": "tar"},
     "Unknown export format 'tar'"),
    (400, "GET", "environments/local/dup/export", None, {"format": "lock"}, "no lock yet"),
]  # fmt: skip


async def test_errors(jp_fetch):
    for status, method, path, body, query, message in BAD_INPUT:
        await expect_error(jp_fetch, status, method, *path.split("/"), body=body, match=message,
                           **query)  # fmt: skip
    e = await expect_error(jp_fetch, 400, "POST", "environments", body={"name": "../x"})
    assert e["field"] == "name" and e["item"] == "../x"
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(NS, "environments", method="POST", body="{not json")
    assert info.value.code == 400
    assert "not valid JSON" in json.loads(info.value.response.body)["message"]
    # nothing was created by any of those
    assert (await get_json(jp_fetch, "environments"))["environments"] == []

    await call(jp_fetch, "POST", "environments", body={"name": "dup"})
    for status, method, path, body, query, message in NOT_BUILT:
        await expect_error(jp_fetch, status, method, *path.split("/"), body=body, match=message,
                           **query)  # fmt: skip
    r = await call(jp_fetch, "POST", "environments", "local", "dup", "builds")
    version = json.loads(r.body)["build"]["version"]
    await expect_error(jp_fetch, 409, "POST", "environments", "local", "dup", "builds",
                       match="already")  # fmt: skip
    await expect_error(jp_fetch, 409, "DELETE", "environments", "local", "dup",
                       match="cancel it first")  # fmt: skip
    await wait_build(jp_fetch, "local", "dup", version)
    await expect_error(jp_fetch, 409, "POST", "environments", "local", "dup", "builds",
                       str(version), "cancel", match="has already succeeded")  # fmt: skip
    # DELETE of a build means nothing: cancel is POST .../cancel
    r = await jp_fetch("env-manager", "environments", "local", "dup", "builds", str(version),
                       method="DELETE", raise_error=False)  # fmt: skip
    assert r.code == 405


@pytest.fixture
def slow_channel(tmp_path_factory):
    """A channel whose `slowmod` sleeps on import: with kernel_packages it makes verify slow."""
    pkg = PackageDef(
        "slowmod",
        "1.0",
        noarch="python",
        depends=["python"],
        files={"site-packages/slowmod/__init__.py": "import time\ntime.sleep(4)\n"},
    )
    return build_channel(
        tmp_path_factory.mktemp("slow"), extra=[pkg], defaults=False, host_packages=()
    )


@pytest.fixture
def jp_server_config(envmgr_settings, slow_channel, request):  # noqa: F811
    from traitlets.config import Config

    settings = dict(envmgr_settings, watch_interval_s=0.2)
    if "slow" in request.node.name:
        settings["channels"] = [*settings["channels"], slow_channel]
        settings["kernel_packages"] = ["ipykernel", "slowmod"]
        settings["max_concurrent_builds"] = 2
    if "timeout" in request.node.name:
        settings["build_timeout_s"] = 2
    if "no_shared" in request.node.name:
        settings["shared_root"] = None
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_env_manager": True},
                "allow_unauthenticated_access": False,
            },
            "EnvManager": settings,
        }
    )


async def test_no_shared_store_gives_400(jp_fetch):  # "no_shared" configures no shared root
    info = await get_json(jp_fetch, "info")
    assert info["shared_root"] is None
    await expect_error(
        jp_fetch, 400, "GET", "environments", scope="shared", match="No shared store is configured"
    )
    await expect_error(
        jp_fetch,
        400,
        "POST",
        "environments",
        body={"name": "x", "scope": "shared"},
        match="No shared store is configured",
    )
    await expect_error(
        jp_fetch, 400, "GET", "environments", "shared", "x", match="No shared store is configured"
    )
    assert (await get_json(jp_fetch, "environments"))["environments"] == []


async def test_slow_builds_run_in_background_and_cancel(jp_fetch, jp_serverapp):
    """Two builds run at once; the server answers meanwhile; a cancel stops one cleanly."""
    events = []

    async def listener(logger, schema_id, data):
        events.append((schema_id, dict(data)))

    for schema in EVENT_IDS.values():
        jp_serverapp.event_logger.add_listener(schema_id=schema, listener=listener)

    for name in ("one", "two"):
        await call(jp_fetch, "POST", "environments", body={"name": name, "conda": ["alpha"]})
    for name in ("one", "two"):
        r = await call(jp_fetch, "POST", "environments", "local", name, "builds")
        assert r.code == 202
    # Both builds run at the same time while requests keep being answered.
    answered_while_both_ran = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and answered_while_both_ran < 20:
        await get_json(jp_fetch, "info")
        states = [
            (await get_json(jp_fetch, "environments", "local", n, "builds", "1"))["status"]
            for n in ("one", "two")
        ]
        if states == ["running", "running"]:
            answered_while_both_ran += 1
        await asyncio.sleep(0.01)
    assert answered_while_both_ran >= 20
    # Cancel "two" in the middle of its verify phase (its python sleeps importing slowmod).
    r = await call(jp_fetch, "POST", "environments", "local", "two", "builds", "1", "cancel")
    cancelled = json.loads(r.body)
    assert cancelled["status"] == "cancelled"
    one = await wait_build(jp_fetch, "local", "one", 1)
    assert one["status"] == "succeeded"
    two = await get_json(jp_fetch, "environments", "local", "two")
    assert two["status"] == "saved" and two["version"] is None
    assert two["versions"][0]["status"] == "cancelled"
    # the worker and its children are gone, and so is the staging prefix
    build_dir = str(jp_serverapp.web_app.settings["env_manager"].builds.dir("local", "two", 1))
    assert workers(build_dir) == []  # started for it, or a spare worker that took it
    staging = Path(two["prefix"]).parent / ".envmgr" / "staging"
    assert list(staging.iterdir()) == []
    await asyncio.sleep(0.5)
    by_schema = {}
    for schema_id, data in events:
        by_schema.setdefault(schema_id.rsplit("/", 2)[-2], []).append(data)
    assert {"action": "created", "scope": "local", "name": "one"} in by_schema["environment"]
    actions = [(d["name"], d["action"], d.get("status")) for d in by_schema["build"]]
    assert ("one", "queued", "queued") in actions and ("one", "finished", "succeeded") in actions
    assert ("two", "finished", "cancelled") in actions
    phases = [
        d["phase"] for d in by_schema["build"] if d["name"] == "one" and d["action"] == "phase"
    ]
    assert {"solve", "link", "verify", "kernel"} <= set(phases)
    # A build's kernelspec is announced once (clients refresh their kernelspecs on kernel
    # events only), before the build's end, although both the queue and the watcher see it.
    one_kernel = {
        "action": "activated",
        "scope": "local",
        "name": "one",
        "kernel_name": "envmgr-one",
    }
    assert by_schema["kernel"].count(one_kernel) == 1
    order = [(s.rsplit("/", 2)[-2], d) for s, d in events]
    assert order.index(("kernel", one_kernel)) < order.index(
        (
            "build",
            next(d for d in by_schema["build"] if d["name"] == "one" and d["action"] == "finished"),
        )
    )
    r = await call(jp_fetch, "POST", "environments", "local", "one", "deactivate")
    await asyncio.sleep(0.1)
    kernel_events = [(s, d) for s, d in events if s == EVENT_IDS["kernel"]]
    assert kernel_events[-1][1] == {
        "action": "deactivated",
        "scope": "local",
        "name": "one",
        "kernel_name": "envmgr-one",
    }


def _openapi():
    import yaml

    return yaml.safe_load((Path(__file__).parents[1] / "docs" / "openapi.yaml").read_text())


def test_openapi_documents_every_route():
    import re

    from jupyter_env_manager.server.handlers import ROUTES

    documented = set(_openapi()["paths"])
    served = set()
    for pattern, _handler in ROUTES:
        path = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", pattern)
        alternatives = re.search(r"\(\?P<action>([\w|]+)\)", path)
        if alternatives:
            for action in alternatives.group(1).split("|"):
                served.add(path.replace(alternatives.group(0), action))
        else:
            served.add(path)
    assert served == documented


async def test_responses_match_the_openapi_schemas(jp_fetch):
    from openapi_schema_validator import OAS30Validator

    doc = _openapi()

    def check(name, instance):
        schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
        schema = json.loads(json.dumps(schema).replace("#/components/", "#/components/"))
        OAS30Validator(schema).validate(instance)

    check("Info", await get_json(jp_fetch, "info"))
    await create_and_build(jp_fetch, "shaped", conda=["alpha"])
    env = await get_json(jp_fetch, "environments", "local", "shaped")
    check("Env", env)
    for build in env["versions"]:
        check("Build", build)
    lock = json.loads(
        (
            await call(jp_fetch, "GET", "environments", "local", "shaped", "export", format="lock")
        ).body
    )
    check("Lock", lock)
    listed = doc["paths"]["/environments"]["get"]["responses"]["200"]["content"]
    validator = OAS30Validator({**listed["application/json"]["schema"], **doc})
    for view in ("full", "compact"):
        body = json.loads((await call(jp_fetch, "GET", "environments", view=view)).body)
        assert ("reasons" in body) == (view == "compact")
        validator.validate(body)
    err = await expect_error(jp_fetch, 400, "POST", "environments", body={"name": "B@d"})
    check("Error", err)


async def test_changes_by_other_processes_reach_the_event_stream(jp_fetch, jp_serverapp):
    """What the CLI or the magics do (another process, same store) is announced as events."""
    from jupyter_env_manager.config import EnvManager
    from jupyter_env_manager.core.service import EnvService

    events = []

    async def listener(logger, schema_id, data):
        events.append((schema_id.rsplit("/", 2)[-2], dict(data)))

    for schema in EVENT_IDS.values():
        jp_serverapp.event_logger.add_listener(schema_id=schema, listener=listener)
    await get_json(jp_fetch, "info")
    await asyncio.sleep(0.5)  # the watcher's first look
    other = EnvService(EnvManager(config=jp_serverapp.config))  # as the CLI would
    other.envs.create({"name": "elsewhere", "conda": ["alpha"]})
    from jupyter_env_manager.core.runner import run_foreground

    build = other.builds.prepare("local", "elsewhere")
    result = await asyncio.to_thread(run_foreground, other, "local", "elsewhere", build)
    assert result.status == "succeeded"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ("build", "elsewhere", "finished") in {(k, d["name"], d["action"]) for k, d in events}:
            break
        await asyncio.sleep(0.1)
    assert ("environment", {"action": "created", "scope": "local", "name": "elsewhere"}) in events
    finished = [d for k, d in events if k == "build" and d["action"] == "finished"]
    assert finished == [
        {
            "action": "finished",
            "scope": "local",
            "name": "elsewhere",
            "version": 1,
            "status": "succeeded",
            "phase": "kernel",
        }
    ]
    # A teammate's environment (its kernelspec written in their own data dir, not ours):
    # the watcher gives us ours without a restart.
    from jupyter_env_manager.core import kernels

    kernels.remove_kernelspec("local", "elsewhere")
    other.envs.update("local", "elsewhere", {"display_name": "From a teammate"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and kernels.read_kernelspec("local", "elsewhere") is None:
        await asyncio.sleep(0.1)
    assert kernels.read_kernelspec("local", "elsewhere")["display_name"] == "From a teammate"
    other.envs.delete("local", "elsewhere")
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline
        and ("environment", {"action": "deleted", "scope": "local", "name": "elsewhere"})
        not in events
    ):
        await asyncio.sleep(0.1)
    assert ("environment", {"action": "deleted", "scope": "local", "name": "elsewhere"}) in events


async def test_slow_build_past_its_timeout_fails(jp_fetch):
    """build_timeout_s stops a build (its verify sleeps 4 s here) and marks it failed."""
    await call(jp_fetch, "POST", "environments", body={"name": "late", "conda": ["alpha"]})
    await call(jp_fetch, "POST", "environments", "local", "late", "builds")
    build = await wait_build(jp_fetch, "local", "late", 1)
    assert build["status"] == "failed"
    assert build["error"] == "The build took longer than build_timeout_s (2 s)"
    env = await get_json(jp_fetch, "environments", "local", "late")
    assert env["version"] is None and env["status"] == "failed"


async def test_install_and_uninstall_over_rest(jp_fetch):
    """One core verb behind REST, CLI and magics: the spec changes only if the build succeeds."""
    await create_and_build(jp_fetch, "pk", conda=["alpha=1.0"])
    r = await call(jp_fetch, "POST", "environments", "local", "pk", "install",
                   body={"packages": ["gamma"]})  # fmt: skip
    assert r.code == 202
    build = json.loads(r.body)["build"]
    assert r.headers["Location"].endswith(f"/environments/local/pk/builds/{build['version']}")
    assert (await wait_build(jp_fetch, "local", "pk", build["version"]))["status"] == "succeeded"
    assert (await get_json(jp_fetch, "environments", "local", "pk"))["spec"]["conda"] == [
        "alpha=1.0",
        "gamma",
    ]
    # a package nothing provides: the build fails and the spec is as it was
    r = await call(jp_fetch, "POST", "environments", "local", "pk", "install",
                   body={"packages": ["needs-missing"]})  # fmt: skip
    failed = await wait_build(jp_fetch, "local", "pk", json.loads(r.body)["build"]["version"])
    assert failed["status"] == "failed"
    env = await get_json(jp_fetch, "environments", "local", "pk")
    assert env["spec"]["conda"] == ["alpha=1.0", "gamma"] and env["version"] == build["version"]
    for action, body, field, message in [
        ("install", {}, "packages", "'packages' must be a non-empty list of strings"),
        ("install", {"packages": [5]}, "packages", "'packages' must be a non-empty list"),
        ("install", {"packages": ["x"], "pip": "yes"}, "pip", "'pip' must be true or false"),
        ("install", {"packages": ["x"], "y": 1}, "y", "Unknown field 'y'"),
        ("uninstall", {"packages": ["beta"]}, "conda", "Package 'beta' is not in the conda"),
    ]:
        err = await expect_error(jp_fetch, 400, "POST", "environments", "local", "pk", action,
                                 body=body, match=message)  # fmt: skip
        assert err["field"] == field, err
