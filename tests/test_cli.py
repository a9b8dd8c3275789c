"""``jupyter envmgr`` for real: subprocesses against the local test channel, and a live server.

The subprocesses read ``c.EnvManager`` from ``jupyter_server_config.json`` in the test's
``JUPYTER_CONFIG_DIR``, as they would on a user's machine (fixture ``config_file``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.cli.parser import build_parser
from jupyter_env_manager.core import kernels
from jupyter_env_manager.core.errors import EnvManagerError, ValidationError
from jupyter_env_manager.core.spec import with_packages, without_packages

COMMANDS = [
    "list", "show", "create", "import", "build", "install", "uninstall", "activate",
    "deactivate", "copy", "versions", "revert", "log", "export", "delete", "adopt",
    "sync-kernels", "info", "help", "packages", "diff", "search", "pin", "unpin", "gc", "du",
    "clean", "demo", "which",
    "submit", "requests", "review", "approve", "reject", "withdraw", "audit",
]  # fmt: skip


def envmgr(*args: str, code: int = 0) -> subprocess.CompletedProcess:
    """Run ``python -m jupyter_env_manager.cli.commands ARGS`` and check its exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def envmgr_json(*args: str, code: int = 0):
    return json.loads(envmgr(*args, "--json", code=code).stdout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def core_message(call, *args) -> str:
    with pytest.raises(EnvManagerError) as info:
        call(*args)
    return info.value.message


def test_every_command_has_help():
    assert sorted(build_parser().commands) == sorted(COMMANDS)
    top = envmgr("--help")
    assert "usage: jupyter envmgr" in top.stdout
    for command in COMMANDS:
        assert command in top.stdout
        proc = envmgr(command, "--help")
        assert proc.stdout.startswith(f"usage: jupyter envmgr {command}"), proc.stdout
    assert "--format {environment.yml,lock,explicit,bundle}" in envmgr("help", "export").stdout
    assert envmgr().stdout == top.stdout  # no command: the help


def test_create_build_and_inspect(service, tmp_path):
    proc = envmgr(
        "create", "demo", "--conda", "alpha=1.0", "gamma", "--pip", "envmgr-hello==1.0", "--build"
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "building local/demo v1 ..."
    assert {"== solve ==", "== pip =="} <= {line.partition("] ")[2] for line in lines}
    env = service.envs.get("local", "demo")
    assert lines[-1].startswith(f"✓ built local/demo v1 ({env['packages']} packages) in ")
    assert lines[-1].endswith("s") and proc.stderr == ""

    listed = envmgr_json("list")["environments"]
    assert [(e["name"], e["status"], e["version"]) for e in listed] == [("demo", "ready", 1)]
    table = envmgr("list").stdout.splitlines()
    assert table[0].split() == "name scope status version python packages kernel".split()
    row = ["demo", "local", "ready", "1", env["python_version"], str(env["packages"])]
    assert table[2].split() == [*row, "envmgr-demo"]

    shown = envmgr("show", "demo").stdout
    assert "alpha=1.0, gamma" in shown and "envmgr-hello==1.0" in shown and env["prefix"] in shown
    assert envmgr_json("show", "demo") == service.envs.get("local", "demo")
    versions = envmgr_json("versions", "demo")
    assert [b["status"] for b in versions["builds"]] == ["succeeded"]
    assert "v1 *" in envmgr("versions", "demo").stdout
    assert "== solve ==" in envmgr("log", "demo").stdout
    log = service.builds.read_log("local", "demo", 1)[0].decode()
    assert envmgr_json("log", "demo", "1")["log"] == log

    assert "alpha=1.0" in envmgr("export", "demo").stdout
    lock = json.loads(envmgr("export", "demo", "--format", "lock").stdout)
    assert {"name": "envmgr-hello", "version": "1.0"} in lock["pip"]
    out = tmp_path / "out.txt"
    assert envmgr("export", "demo", "--format", "explicit", "-o", str(out)).stdout.startswith("✓")
    assert "@EXPLICIT" in out.read_text()

    info = envmgr_json("info")
    assert info["local_root"] == str(service.local.root)


def test_failed_build_exits_1_with_one_line(service):
    envmgr("create", "broken", "--pip", "envmgr-not-in-the-wheelhouse")
    proc = envmgr("build", "broken", code=1)
    line = one_error_line(proc)
    assert line.startswith("✗ build of local/broken v1 failed in phase pip: pip failed"), line
    assert "== pip ==" in proc.stdout  # the log was shown live
    data = envmgr_json("build", "broken", code=1)
    assert data["build"]["status"] == "failed" and data["build"]["version"] == 2
    assert data["environment"]["status"] == "failed"


def test_copy_revert_kernels_and_delete(service):
    envmgr("create", "demo", "--conda", "alpha=1.0", "--build")
    envmgr("install", "alpha=2.0", "--env", "demo")
    assert service.envs.get("local", "demo")["spec"]["conda"] == ["alpha=2.0"]

    proc = envmgr("revert", "demo", "1")
    assert proc.stdout.splitlines()[-1].startswith("✓ reverted local/demo to v1 as v3 (")
    data = envmgr_json("copy", "demo", "--to", "shared", "--name", "team")
    assert data["build"]["status"] == "succeeded" and data["environment"]["scope"] == "shared"
    assert data["environment"]["origin"]["copied_from"] == {
        "scope": "local",
        "name": "demo",
        "version": 3,
    }
    proc = envmgr("copy", "team", "--shared", "--to", "local", "--name", "back")
    assert proc.stdout.splitlines()[-1].startswith("✓ copied shared/team v1 to local/back v1 (")
    assert {e["name"] for e in envmgr_json("list", "--shared")["environments"]} == {"team"}

    assert envmgr("deactivate", "demo").stdout.startswith("✓ kernel envmgr-demo removed")
    assert "envmgr-demo" not in kernels.installed()
    envmgr("activate", "demo")
    # a restart that lost the kernelspecs: sync-kernels re-creates them
    shutil.rmtree(kernels.kernels_dir())
    done = envmgr_json("sync-kernels")
    assert sorted(done["created"]) == ["envmgr-back", "envmgr-demo", "envmgr-shared-team"]
    assert kernels.read_kernelspec("local", "demo")["metadata"]["env_manager"]["version"] == 3

    refused = one_error_line(envmgr("delete", "demo", code=2))
    assert refused == (
        "jupyter envmgr: error: delete removes local/demo, all its versions and its kernel: "
        "add --yes to confirm"
    )
    assert service.envs.get("local", "demo")["status"] == "ready"
    assert envmgr("delete", "demo", "--yes").stdout.strip() == "✓ deleted local/demo"
    assert "demo" not in {e["name"] for e in service.envs.list("local")}


def test_spec_edits():
    conda = ["alpha=1.0", "conda-forge::gamma >=1"]
    assert with_packages(conda, ["Gamma=2", "beta"], "conda") == ["alpha=1.0", "Gamma=2", "beta"]
    pip = ["envmgr-dep", "envmgr-hello==1.0"]
    assert with_packages(pip, ["envmgr_Hello>=2"], "pip") == ["envmgr-dep", "envmgr_Hello>=2"]
    assert without_packages(pip, ["envmgr.hello"], "pip", "local/x") == ["envmgr-dep"]
    with pytest.raises(ValidationError, match="Package 'beta' is not in the conda packages of x"):
        without_packages(conda, ["beta"], "conda", "x")


def test_install_uninstall_edit_the_spec(service):
    service.envs.create({"name": "demo", "conda": ["alpha=1.0"], "pip": ["envmgr-dep"]})
    envmgr("install", "--pip", "envmgr-hello==2.0", "--env", "demo")
    env = service.envs.get("local", "demo")
    assert env["spec"]["pip"] == ["envmgr-dep", "envmgr-hello==2.0"] and env["version"] == 1
    # The environment is found from CONDA_PREFIX, as in an activated shell.
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", "uninstall", "--pip", "envmgr-dep"],
        env={**os.environ, "CONDA_PREFIX": env["prefix"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.splitlines()[-1].startswith("✓ built local/demo v2")
    assert service.envs.get("local", "demo")["spec"]["pip"] == ["envmgr-hello==2.0"]

    line = one_error_line(envmgr("uninstall", "beta", "--env", "demo", code=1))
    assert line.endswith(": error: Package 'beta' is not in the conda packages of local/demo")
    # a failed build leaves the spec as it was
    proc = envmgr("install", "needs-missing", "--env", "demo", code=1)
    assert proc.stderr.startswith(
        "✗ build of local/demo v3 failed in phase solve (the spec of local/demo is unchanged): "
        "Could not solve the environment"
    )
    assert service.envs.get("local", "demo")["spec"]["conda"] == ["alpha=1.0"]
    line = one_error_line(envmgr("install", "gamma", code=1))
    assert line.startswith(f"jupyter envmgr: error: {sys.prefix} is not an environment of the")


def test_import_and_adopt(service, tmp_path):
    yml = tmp_path / "environment.yml"
    yml.write_text("name: fromfile\ndependencies:\n  - alpha=1.0\n  - pip:\n    - envmgr-dep\n")
    env = envmgr_json("import", str(yml))
    assert env["name"] == "fromfile" and env["spec"]["pip"] == ["envmgr-dep"]
    envmgr("create", "other", "--file", str(yml), "--build")
    assert service.envs.get("local", "other")["spec"]["conda"] == ["alpha=1.0"]
    # a prefix conda made: adopt it
    os.rename(service.local.prefix("other"), service.local.root / "byconda")
    proc = envmgr("adopt", "byconda")
    assert proc.stdout.startswith("✓ adopted local/byconda as v1 (")


@pytest.mark.parametrize(
    "args, code, expected",
    [
        (["create", "Bad Name"], 1, lambda s: core_message(s.envs.create, {"name": "Bad Name"})),
        (["show", "nope"], 1, lambda s: core_message(s.envs.get, "local", "nope")),
        (["build", "nope", "--shared"], 1,
         lambda s: core_message(s.builds.prepare, "shared", "nope")),
        (["create", "ok", "--conda", "numpy;rm"], 1,
         lambda s: core_message(s.envs.create, {"name": "ok", "conda": ["numpy;rm"]})),
        (["revert", "demo", "x"], 1,
         lambda s: core_message(s.builds.revert, "local", "demo", "x")),
        (["log", "demo", "x"], 1, lambda s: "Invalid version 'x'"),
        (["import", "/no/such.yml"], 1,
         lambda s: "Cannot read /no/such.yml: No such file or directory"),
        (["create", "x", "--file", "e.yml", "--conda", "a"], 2,
         lambda s: "--file cannot be combined with --conda"),
        (["copy", "demo"], 2,
         lambda s: "the following arguments are required: --to (see 'jupyter envmgr copy --help')"),
        (["frobnicate"], 2, lambda s: "argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_the_core_message(service, args, code, expected):
    service.envs.create({"name": "demo"})
    proc = envmgr(*args, code=code)
    line = one_error_line(proc)
    assert line.startswith(f"jupyter envmgr: error: {expected(service)}"), line
    if code == 1:
        body = json.loads(envmgr(*args, "--json", code=1).stdout)
        assert body["message"] == line.removeprefix("jupyter envmgr: error: ")


# -- with a running server -----------------------------------------------------------------------


async def run_cli(*args: str, code: int = 0) -> subprocess.CompletedProcess:
    """Run the CLI without blocking the server's event loop."""
    return await asyncio.to_thread(envmgr, *args, code=code)


async def get(jp_fetch, *path):
    return json.loads((await jp_fetch("env-manager", *path)).body)


async def test_cli_and_server_see_the_same_state(jp_fetch, config_file, envmgr_settings):
    # CLI -> server
    await run_cli("create", "viacli", "--conda", "alpha", "--build")
    envs = (await get(jp_fetch, "environments"))["environments"]
    assert [(e["name"], e["status"], e["version"]) for e in envs] == [("viacli", "ready", 1)]
    cli_view = json.loads((await run_cli("show", "viacli", "--json")).stdout)
    assert await get(jp_fetch, "environments", "local", "viacli") == cli_view

    # server -> CLI: a server build runs while the CLI builds another environment
    body = json.dumps({"name": "viaserver", "conda": ["gamma"], "build": True})
    response = await jp_fetch("env-manager", "environments", method="POST", body=body)
    assert response.code == 201
    cli_build = asyncio.create_task(run_cli("install", "beta", "--env", "viacli", "--json"))
    for _ in range(600):
        env = await get(jp_fetch, "environments", "local", "viaserver")
        if env["status"] != "building":
            break
        await asyncio.sleep(0.05)
    assert env["status"] == "ready" and env["version"] == 1
    done = json.loads((await cli_build).stdout)
    assert done["build"]["status"] == "succeeded" and done["build"]["version"] == 2
    assert (await get(jp_fetch, "environments", "local", "viacli"))["version"] == 2
    listed = json.loads((await run_cli("list", "--json")).stdout)["environments"]
    assert {(e["name"], e["status"], e["version"]) for e in listed} == {
        ("viacli", "ready", 2),
        ("viaserver", "ready", 1),
    }

    # the same error message through both doors
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("env-manager", "environments", method="POST", body='{"name": "Bad Name"}')
    rest = json.loads(info.value.response.body)["message"]
    line = one_error_line(await run_cli("create", "Bad Name", code=1))
    assert line == f"jupyter envmgr: error: {rest}"
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("env-manager", "environments", "local", "nope")
    rest = json.loads(info.value.response.body)["message"]
    assert one_error_line(await run_cli("show", "nope", code=1)) == f"jupyter envmgr: error: {rest}"
