"""The server decides what a user may do with an environment (``actions``), with reasons."""

from __future__ import annotations

from helpers import build

from jupyter_env_manager.core.actions import (
    ACTIONS,
    BUSY,
    NO_OTHER_VERSION,
    NO_SHARED,
    NOT_BUILT,
    NOT_MANAGED,
)


def allowed(view) -> set[str]:
    assert set(view["actions"]) == set(ACTIONS)
    return {name for name, action in view["actions"].items() if action["allowed"]}


def test_actions_follow_the_environments_state(service):
    service.envs.create({"name": "demo", "conda": ["alpha"]})
    saved = service.envs.get("local", "demo")
    assert allowed(saved) == {"build", "edit", "delete", "export"}
    assert saved["actions"]["revert"] == {"allowed": False, "reason": NOT_BUILT}
    assert saved["actions"]["cancel"]["reason"] == "No build is running"

    queued = service.builds.prepare("local", "demo")
    busy = service.envs.get("local", "demo")
    assert busy["status"] == "building"
    assert {a: busy["actions"][a]["reason"] for a in ("build", "edit", "delete")} == dict.fromkeys(
        ("build", "edit", "delete"), BUSY
    )
    assert busy["actions"]["cancel"] == {"allowed": True, "reason": None}
    service.builds.finish_cancelled("local", "demo", queued.version)

    assert build(service, "local", "demo").status == "succeeded"
    ready = service.envs.get("local", "demo")
    assert allowed(ready) == {
        "build", "edit", "revert", "delete", "copy_local", "copy_shared", "deactivate", "export",
        "submit",
    }  # fmt: skip
    assert ready["version"] == 2  # v1 was cancelled: the versions table offers only good rows
    assert ready["actions"]["activate"]["reason"] == "Its kernel is already in the launcher"
    service.kernels.deactivate("local", "demo")
    listed = {e["name"]: e for e in service.envs.list("local")}["demo"]
    assert "activate" in allowed(listed) and "deactivate" not in allowed(listed)


def test_revert_needs_another_version(service):
    service.envs.create({"name": "one", "conda": ["alpha"]})
    assert build(service, "local", "one").status == "succeeded"
    view = service.envs.get("local", "one")
    assert view["actions"]["revert"] == {"allowed": False, "reason": NO_OTHER_VERSION}


def test_unmanaged_environments_can_only_get_a_kernel_or_be_adopted(service):
    service.envs.create({"name": "demo", "conda": ["alpha"]})
    build(service, "local", "demo")
    service.local.prefix("demo").rename(service.local.root / "byconda")
    view = service.envs.get("local", "byconda")
    assert allowed(view) == {"adopt", "activate"}
    assert view["actions"]["build"]["reason"] == NOT_MANAGED


def test_copy_to_shared_needs_a_shared_store(config_file, envmgr_config):
    from jupyter_env_manager.config import EnvManager
    from jupyter_env_manager.core.service import EnvService

    envmgr_config.EnvManager.shared_root = None
    service = EnvService(EnvManager(config=envmgr_config))
    service.envs.create({"name": "solo", "conda": ["alpha"]})
    build(service, "local", "solo")
    view = service.envs.get("local", "solo")
    assert view["actions"]["copy_shared"] == {"allowed": False, "reason": NO_SHARED}
    assert view["actions"]["copy_local"]["allowed"]
