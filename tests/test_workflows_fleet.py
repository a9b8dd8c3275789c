"""Install into all environments, and ``which``: real builds from every door."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading

import pytest
from helpers import build
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.config import EnvManager
from jupyter_env_manager.core.errors import ValidationError
from jupyter_env_manager.core.runner import ForegroundRunner
from jupyter_env_manager.core.service import EnvService


class CountingRunner(ForegroundRunner):
    """The CLI's runner, counting how many builds run at once."""

    def __init__(self, service):
        from jupyter_env_manager.cli.commands import Progress

        super().__init__(service, Progress())
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def submit(self, scope, name, build):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().submit(scope, name, build)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def fleet(service):
    """Local a (alpha 1.0), b (alpha 1.0 + pip envmgr-hello 1.0), broken (cannot solve), an
    environment made by conda (unmanaged), and shared s (alpha 2.0)."""
    specs = {
        "a": {"conda": ["alpha=1.0"]},
        "b": {"conda": ["alpha=1.0"], "pip": ["envmgr-hello==1.0"]},
        "made": {"conda": ["alpha=1.0"]},
    }
    for name, spec in specs.items():
        service.envs.create({"name": name, **spec})
        assert build(service, "local", name).status == "succeeded"
    # a plain prefix, as conda makes
    os.rename(service.local.active_prefix("made"), service.local.root / "byconda")
    os.unlink(service.local.prefix("made"))
    service.envs.delete("local", "made")
    service.envs.create({"name": "broken", "conda": ["needs-missing"]})
    service.envs.create({"scope": "shared", "name": "s", "conda": ["alpha=2.0"]})
    assert build(service, "shared", "s").status == "succeeded"
    return service


def by_env(rows):
    return {f"{r['scope']}/{r['name']}": r for r in rows}


def test_install_all_one_build_each_within_the_limit(fleet, envmgr_config):
    envmgr_config.EnvManager.max_concurrent_builds = 1
    service = EnvService(EnvManager(config=envmgr_config))
    runner = service.runner = CountingRunner(service)
    rows = by_env(service.fleet.install_all({"conda": ["beta"], "pip": ["envmgr-dep"]}))
    assert set(rows) == {"local/a", "local/b", "local/broken", "local/byconda", "shared/s"}
    a = rows["local/a"]
    assert (a["outcome"], a["version_before"], a["version_after"]) == ("succeeded", 1, 2)
    assert a["packages"] == [
        {"name": "beta", "kind": "conda", "before": None, "after": "1.0"},
        {"name": "envmgr-dep", "kind": "pip", "before": None, "after": "1.0"},
    ]
    s = rows["shared/s"]  # alpha 2.0 already brought beta: only pip is new
    assert s["outcome"] == "succeeded"
    assert s["packages"][0] == {"name": "beta", "kind": "conda", "before": "1.0", "after": "1.0"}
    # one failure is that environment's row; the others went on
    broken = rows["local/broken"]
    assert broken["outcome"] == "failed" and "Could not solve" in broken["reason"]
    skipped = rows["local/byconda"]
    assert skipped["outcome"] == "skipped"
    assert skipped["reason"] == "Not managed by the environment manager: adopt it first"
    assert runner.most == 1  # max_concurrent_builds
    # each succeeded build recorded its edited spec; the failed one left its spec alone
    assert service.envs.get("local", "b")["spec"]["pip"] == ["envmgr-hello==1.0", "envmgr-dep"]
    assert service.envs.get("local", "broken")["spec"]["conda"] == ["needs-missing"]


def test_install_all_of_selected_environments_and_scope(fleet):
    rows = fleet.fleet.install_all({"conda": ["gamma"], "environments": ["local/a"]})
    assert [(r["name"], r["outcome"]) for r in rows] == [("a", "queued")]  # NoRunner
    rows = fleet.fleet.install_all({"conda": ["gamma"], "scope": "shared"})
    assert [(r["scope"], r["name"]) for r in rows] == [("shared", "s")]


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "conda", "Give at least one package in 'conda' or 'pip'"),
        ({"conda": ["python=3.12"]}, "conda", "python cannot be installed into every"),
        ({"conda": ["-x"]}, "conda", "options are not allowed here"),
        ({"pip": ["bad req!"]}, "pip", "Invalid pip requirement 'bad req!'"),
        ({"conda": ["beta"], "scope": "nope"}, "scope", "Invalid scope 'nope'"),
        ({"conda": ["beta"], "environments": "local/a"}, "environments", "must be a non-empty"),
        ({"conda": ["beta"], "environments": ["a"]}, "environments", "use SCOPE/NAME"),
        ({"conda": ["beta"], "environments": ["local/zz"]}, "environments", "No environment"),
        ({"conda": ["beta"], "extra": 1}, "extra", "Unknown field 'extra'"),
    ],
)
def test_install_all_refuses_bad_bodies_and_starts_nothing(service, body, field, message):
    for name in ("a", "b"):
        service.envs.create({"name": name, "conda": ["alpha"]})
    with pytest.raises(ValidationError) as info:
        service.fleet.install_all(body)
    assert info.value.field == field and message in info.value.message
    assert [service.local.versions(n) for n in ("a", "b")] == [[], []]


def test_which_finds_conda_and_pip_packages_in_every_store(fleet):
    hits = fleet.fleet.which("alpha<2")["matches"]
    assert sorted((m["scope"], m["name"], m["version"], m["package_version"]) for m in hits) == [
        ("local", "a", 1, "1.0"),
        ("local", "b", 1, "1.0"),
        ("local", "byconda", None, "1.0"),
    ]
    assert [m["name"] for m in fleet.fleet.which("alpha>=2")["matches"]] == ["s"]
    pip = fleet.fleet.which("envmgr-hello<2", kind="pip")["matches"]
    assert [(m["name"], m["package"], m["kind"]) for m in pip] == [("b", "envmgr-hello", "pip")]
    assert fleet.fleet.which("envmgr-hello>=2")["matches"] == []
    assert [m["name"] for m in fleet.fleet.which("alpha", scope="shared")["matches"]] == ["s"]
    with pytest.raises(ValidationError, match="Invalid package spec 'not a spec!!'"):
        fleet.fleet.which("not a spec!!")
    with pytest.raises(ValidationError, match="Invalid kind 'npm'"):
        fleet.fleet.which("alpha", kind="npm")


def envmgr(*args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_cli_install_all_then_which(fleet):
    proc = envmgr("install", "--all", "--conda", "gamma", "--scope", "local", code=1)
    assert "local/a" in proc.stdout and "v1 → v2" in proc.stdout and "gamma - → 1.0" in proc.stdout
    assert "skipped" in proc.stdout and "Not managed" in proc.stdout
    assert proc.stderr.strip().endswith("2 succeeded, 1 failed, 1 skipped")
    out = envmgr("which", "gamma").stdout
    assert "local/a" in out and "local/b" in out and "2 environment(s) hold 'gamma'" in out
    data = json.loads(envmgr("which", "gamma", "--json").stdout)
    assert {m["name"] for m in data["matches"]} == {"a", "b"}
    assert "give the packages" in envmgr("install", "--all", code=2).stderr


def test_magic_install_all_and_which(fleet, config_file):
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("jupyter_env_manager")

    def magic(line: str):
        with capture_output() as captured:
            assert ip.run_cell(f"%envmgr {line}").success
        return captured

    done = magic("install --all --pip envmgr-dep --scope shared")
    [table] = done.outputs
    assert "shared/s" in table.data["text/html"] and ">succeeded</td>" in table.data["text/html"]
    assert done.stdout.strip().endswith("1 succeeded"), done.stderr
    found = magic("which envmgr-dep")
    assert found.stdout.strip() == "1 environment(s) hold 'envmgr-dep'"
    assert "shared/s" in found.outputs[0].data["text/plain"]


async def test_rest_install_all_and_which(jp_fetch, jp_serverapp, fleet):
    body = {"conda": ["gamma"], "environments": ["local/a", "local/byconda"]}
    r = await jp_fetch("env-manager", "install-all", method="POST", body=json.dumps(body))
    assert r.code == 202
    rows = by_env(json.loads(r.body)["results"])
    assert rows["local/a"]["outcome"] == "queued" and rows["local/a"]["build"] == 2
    assert rows["local/byconda"]["outcome"] == "skipped"
    for _ in range(600):  # the server's queue builds it
        r = await jp_fetch("env-manager", "environments", "local", "a", "builds", "2")
        if json.loads(r.body)["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.1)
    assert json.loads(r.body)["status"] == "succeeded"
    r = await jp_fetch("env-manager", "which", params={"spec": "gamma"})
    assert [m["name"] for m in json.loads(r.body)["matches"]] == ["a"]
    for path, kwargs, field, message in [
        ("install-all", {"method": "POST", "body": "{}"}, "conda", "Give at least one package"),
        ("which", {"params": {"spec": "alpha", "kind": "x"}}, "kind", "Invalid kind 'x'"),
        # found by the fuzz: an empty kind or scope was read as "any"
        ("which", {"params": {"spec": "alpha", "kind": ""}}, "kind", "Invalid kind ''"),
        ("which", {"params": {"spec": "alpha", "scope": ""}}, "scope", "Invalid scope"),
        ("which", {}, "spec", "'spec' is required"),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("env-manager", path, **kwargs)
        assert info.value.code == 400
        error = json.loads(info.value.response.body)
        assert error["field"] == field and message in error["message"], error
