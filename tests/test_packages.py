"""Packages of a version (from its lock), diffs between versions, search in the channels."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import build
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.core.errors import NotFound, ValidationError
from jupyter_env_manager.core.lockfile import read_lock
from jupyter_env_manager.core.packages import ChannelUnavailable


@pytest.fixture
def two_versions(service):
    """local/demo v1 (alpha 1.0, envmgr-hello 1.0) and v2 (alpha 2.0, beta, gamma, hello 2.0)."""
    service.envs.create({"name": "demo", "conda": ["alpha=1.0"], "pip": ["envmgr-hello==1.0"]})
    assert build(service, "local", "demo").status == "succeeded"
    service.envs.update(
        "local", "demo", {"conda": ["alpha=2.0", "gamma"], "pip": ["envmgr-hello==2.0"]}
    )
    assert build(service, "local", "demo").status == "succeeded"
    return service


def lock_of(service, version):
    return read_lock(service.local.build_dir("demo", version))


def test_packages_of_each_version_are_exactly_its_lock(two_versions):
    service = two_versions
    for version in (1, 2):
        listed = service.packages.installed("local", "demo", version)
        lock = lock_of(service, version)
        assert listed["version"] == version
        conda = [p for p in listed["packages"] if p["kind"] == "conda"]
        pip = [p for p in listed["packages"] if p["kind"] == "pip"]
        assert sorted((p["name"], p["version"], p["build"]) for p in conda) == sorted(
            (e["name"], e["version"], e["build"]) for e in lock["conda"]
        )
        assert [(p["name"], p["version"]) for p in pip] == [
            (d["name"], d["version"]) for d in lock["pip"]
        ]
        assert all(isinstance(p["size"], int) and p["size"] > 0 for p in conda)
    v2 = {p["name"]: p for p in service.packages.installed("local", "demo")["packages"]}
    # asked for (the spec, and python) apart from what came as dependencies
    assert v2["alpha"]["requested"] and v2["gamma"]["requested"] and v2["python"]["requested"]
    assert not v2["beta"]["requested"] and not v2["ipykernel"]["requested"]
    assert v2["envmgr-hello"]["requested"] and v2["envmgr-hello"]["version"] == "2.0"


def test_diff_between_versions_lists_exactly_what_changed(two_versions):
    diff = two_versions.packages.diff("local", "demo", 1, 2)
    assert diff["from"] == {"scope": "local", "name": "demo", "version": 1}
    assert diff["to"] == {"scope": "local", "name": "demo", "version": 2}
    assert diff["added"] == [
        {"name": "beta", "kind": "conda", "version": "1.0"},
        {"name": "gamma", "kind": "conda", "version": "1.0"},
    ]
    assert diff["upgraded"] == [
        {"name": "alpha", "kind": "conda", "from": "1.0", "to": "2.0"},
        {"name": "envmgr-hello", "kind": "pip", "from": "1.0", "to": "2.0"},
    ]
    assert diff["removed"] == diff["downgraded"] == diff["rebuilt"] == []
    back = two_versions.packages.diff("local", "demo", 2, 1)
    assert [p["name"] for p in back["removed"]] == ["beta", "gamma"]
    assert [p["name"] for p in back["downgraded"]] == ["alpha", "envmgr-hello"]
    same = two_versions.packages.diff("local", "demo", 2)  # against the version in use
    assert not any(same[k] for k in ("added", "removed", "upgraded", "downgraded", "rebuilt"))


def test_diff_against_another_environment(two_versions):
    service = two_versions
    _env, copy = service.sharing.copy("local", "demo", "shared", "team")
    from jupyter_env_manager.core.runner import run_foreground

    assert run_foreground(service, "shared", "team", copy).status == "succeeded"
    diff = service.packages.diff("local", "demo", 1, other=("shared", "team"))
    assert diff["to"] == {"scope": "shared", "name": "team", "version": 1}
    assert [p["name"] for p in diff["upgraded"]] == ["alpha", "envmgr-hello"]


def test_versions_without_a_lock_are_refused(service):
    service.envs.create({"name": "never"})
    with pytest.raises(ValidationError, match="has no built version yet"):
        service.packages.installed("local", "never")
    with pytest.raises(NotFound, match="has no version 3"):
        service.packages.installed("local", "never", 3)
    with pytest.raises(ValidationError, match="it must be a version number"):
        service.packages.installed("local", "never", "１")


def test_search_finds_packages_by_prefix_with_their_versions(service, test_channel):
    found = service.packages.search("alp")
    assert found["channels"] == [test_channel]
    assert [(p["name"], p["latest"], p["versions"]) for p in found["packages"]] == [
        ("alpha", "2.0", ["2.0", "1.0"])
    ]
    # an exact name first, then shorter names before longer ones
    assert [p["name"] for p in service.packages.search("b")["packages"]] == ["beta", "badmod"]
    assert [p["name"] for p in service.packages.search("beta")["packages"]] == ["beta"]
    assert service.packages.search("zzznothing")["packages"] == []
    with pytest.raises(ValidationError, match="'q' must be the start of a package name"):
        service.packages.search("-rf")


def test_search_says_which_channel_it_could_not_read(service, tmp_path):
    service.settings.channels = [(tmp_path / "no-channel-here").as_uri()]
    with pytest.raises(ChannelUnavailable) as info:
        service.packages.search("alpha")
    assert info.value.status == 502
    assert info.value.message.startswith(f"Could not read the channels {tmp_path.as_uri()}")


async def test_packages_diff_and_search_over_rest(jp_fetch, jp_serverapp):
    service = jp_serverapp.web_app.settings["env_manager"]
    service.envs.create({"name": "web", "conda": ["alpha=1.0"]})
    assert build(service, "local", "web").status == "succeeded"

    async def get(*path, **params):
        r = await jp_fetch("env-manager", *path, params=params)
        return json.loads(r.body)

    from openapi_schema_validator import OAS30Validator
    from test_api import _openapi

    doc = _openapi()

    def check(name, instance):
        OAS30Validator(
            {**doc["components"]["schemas"][name], "components": doc["components"]}
        ).validate(instance)

    listed = await get("environments", "local", "web", "packages")
    check("Packages", listed)
    assert listed["version"] == 1 and "alpha" in [p["name"] for p in listed["packages"]]
    diff = await get("environments", "local", "web", "diff", **{"from": "1"})
    check("Diff", diff)
    assert diff["added"] == [] and diff["to"]["version"] == 1
    found = await get("packages", "search", q="gam")
    check("Search", found)
    assert [p["name"] for p in found["packages"]] == ["gamma"]
    for path, params, field, message in [
        (("environments", "local", "web", "diff"), {}, "from", "'from' is required"),
        (("environments", "local", "web", "diff"), {"from": "1", "other": "x/y"}, "other",
         "Invalid base environment 'x/y'"),
        (("environments", "local", "web", "packages"), {"version": "²"}, "version",
         "Invalid version"),
        (("packages", "search"), {"q": "a b"}, "q", "'q' must be the start"),
        (("packages", "search"), {"q": "a", "scope": "local"}, "name", "Give both"),
        # found by the fuzz: an empty scope was read as "none given"
        (("packages", "search"), {"q": "a", "scope": "", "name": ""}, "scope", "Invalid scope"),
    ]:  # fmt: skip
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("env-manager", *path, params=params)
        body = json.loads(info.value.response.body)
        assert (info.value.code, body["field"]) == (400, field), body
        assert body["message"].startswith(message), body


def test_cli_packages_diff_search(two_versions, config_file):
    def envmgr(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "jupyter_env_manager.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    text = envmgr("packages", "demo", "--version", "1")
    assert text.startswith("local/demo v1: ")
    assert any(line.split()[:2] == ["alpha", "1.0"] for line in text.splitlines())
    assert envmgr("diff", "demo", "1", "2").splitlines()[-1] == "2 added, 2 upgraded"
    data = json.loads(envmgr("diff", "demo", "1", "--json"))
    assert data == two_versions.packages.diff("local", "demo", 1)
    assert "alpha" in envmgr("search", "al")


def test_magics_packages_diff_search(two_versions, config_file):
    """The third door: ``%envmgr packages|diff|search`` answer as the CLI does, in a shell."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("jupyter_env_manager")

    def magic(line):
        with capture_output() as captured:
            result = shell.run_cell(f"%envmgr {line}")
        assert result.success, result.error_in_exec
        return captured

    def text(line):
        captured = magic(line)
        return captured.stdout + "".join(o.data["text/plain"] for o in captured.outputs)

    out = text("packages demo --version 1")
    assert out.startswith("local/demo v1: "), out
    assert any(line.split()[:2] == ["alpha", "1.0"] for line in out.splitlines())
    diff = text("diff demo 1 2")
    assert "2 added, 2 upgraded" in diff and "alpha" in diff and "1.0 → 2.0" in diff, diff
    assert "alpha" in text("search al")
    err = magic("search 'a b'").stderr.strip()
    assert err.startswith("envmgr: 'q' must be the start of a package name"), err


def test_search_for_an_environment_lists_the_versions_its_python_can_install(service, tmp_path):
    """With ``scope``/``name``, versions whose python dependency excludes the environment's
    python (from its lock, else its spec) are left out; without, every version is listed."""
    from jupyter_env_manager.testing.channel import PackageDef, build_channel, default_cache_dir

    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    channel = build_channel(
        tmp_path / "pych",
        cache_dir=default_cache_dir(),
        extra=[
            PackageDef("pyonly", "1.0", depends=["python >=3.8"]),
            PackageDef("pyonly", "2.0", depends=["python >=99"]),
            PackageDef("pyonly", "3.0", depends=[f"python {py}.*"]),
            PackageDef("pyonly", "4.0", depends=["python 3.8.*"]),
        ],
    )
    service.envs.create({"name": "built", "channels": [channel]})
    assert build(service, "local", "built").status == "succeeded"
    service.envs.create({"name": "old", "channels": [channel], "python": "3.8"})

    def versions(*env):
        [found] = service.packages.search("pyon", *env)["packages"]
        return found["versions"]

    assert versions("local", "built") == ["3.0", "1.0"]  # python from its lock
    assert versions("local", "old") == ["4.0", "1.0"]  # never built: python from its spec
    service.settings.channels = [channel]
    assert versions() == ["4.0", "3.0", "2.0", "1.0"]


def test_searches_share_one_gateway_until_it_expires(service, tmp_path, monkeypatch):
    """A warm search reuses the repodata one gateway read (no re-parse); after
    ``GATEWAY_TTL_S`` a new gateway sees what the channel published meanwhile."""
    from jupyter_env_manager.core import packages
    from jupyter_env_manager.testing.channel import build_channel
    from jupyter_env_manager.testing.index_only import add_index_only_names

    root = tmp_path / "growing"
    service.settings.channels = [build_channel(root, host_packages=())]
    assert service.packages.search("ralo")["packages"] == []
    first = service.packages.gateway()
    names = [n for n in add_index_only_names(root, 300) if n.startswith("r-")]
    assert names
    prefix = names[0][:5]
    assert service.packages.gateway() is first
    assert service.packages.search(prefix)["packages"] == []  # within the TTL: as read
    monkeypatch.setattr(packages, "GATEWAY_TTL_S", 0.0)
    found = [p["name"] for p in service.packages.search(prefix)["packages"]]
    assert service.packages.gateway() is not first
    assert names[0] in found
    matching = [n for n in names if n.startswith(prefix)]
    expected = sorted(matching, key=lambda n: (n != prefix, len(n), n))[: packages.SEARCH_LIMIT]
    assert found == expected


def test_concurrent_searches_share_the_gateway_safely(service, tmp_path):
    """The REST handlers search from several threads at once: one shared gateway answers each
    exactly as a search alone does (40 searches on 8 threads, bounded)."""
    from concurrent.futures import ThreadPoolExecutor

    from jupyter_env_manager.testing.channel import build_channel
    from jupyter_env_manager.testing.index_only import add_index_only_names

    root = tmp_path / "busy"
    service.settings.channels = [build_channel(root, host_packages=())]
    add_index_only_names(root, 2000)
    prefixes = ["p", "r-", "ka", "lib", "zz", "al", "py", "ma"]
    alone = {q: service.packages.search(q)["packages"] for q in prefixes}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda q: (q, service.packages.search(q)), prefixes * 5))
    assert len(answers) == 40
    assert all(reply["packages"] == alone[q] for q, reply in answers)
    print(f"concurrent searches: {len(answers)} on 8 threads, all equal to the lone answers")
