"""``%envmgr`` for real: in an IPython InteractiveShell, and inside a kernel of a built environment.

The magics read ``c.EnvManager`` from ``jupyter_server_config.json`` in the test's
``JUPYTER_CONFIG_DIR`` (fixture ``config_file``), like the CLI and the server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import build
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from jupyter_client.manager import KernelManager
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.core.errors import EnvManagerError

SOURCE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shell(config_file) -> InteractiveShell:
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("jupyter_env_manager")
    return ip


def magic(shell: InteractiveShell, line: str):
    """Run ``%envmgr LINE`` as a cell; returns the captured stdout, stderr and rich outputs."""
    with capture_output() as captured:
        result = shell.run_cell(f"%envmgr {line}")
    assert result.success, result.error_in_exec  # errors are messages, never exceptions
    return captured


def error_line(captured) -> str:
    lines = captured.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.stdout, captured.stderr
    return lines[0]


def core_message(call, *args) -> str:
    with pytest.raises(EnvManagerError) as info:
        call(*args)
    return info.value.message


def test_help_and_usage_errors(shell):
    assert magic(shell, "").stdout.startswith("usage: %envmgr [-h] [--json] COMMAND")
    assert "install" in magic(shell, "help").stdout
    assert "--conda PKG [PKG ...]" in magic(shell, "help create").stdout
    assert magic(shell, "create --help").stdout.startswith("usage: %envmgr create")
    assert error_line(magic(shell, "help frobnicate")) == "envmgr: unknown command 'frobnicate'"
    assert error_line(magic(shell, "frobnicate")).startswith(
        "envmgr: argument COMMAND: invalid choice: 'frobnicate'"
    )
    assert error_line(magic(shell, "copy demo")) == (
        "envmgr: the following arguments are required: --to (see '%envmgr copy --help')"
    )
    assert error_line(magic(shell, "create 'demo")) == "envmgr: No closing quotation"


def test_create_build_and_show_in_a_shell(shell, service):
    out = magic(
        shell,
        "create demo --conda alpha=1.0 --pip envmgr-hello==1.0 --build "
        "--display-name '<b>Demo</b>'",
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "building local/demo v1 ..."
    assert any("== link ==" in line for line in lines)  # the log, live
    env = service.envs.get("local", "demo")
    assert lines[-1].startswith(f"✓ built local/demo v1 ({env['packages']} packages) in ")

    listed = magic(shell, "list")
    [output] = listed.outputs
    html = output.data["text/html"]
    for column in ("name", "scope", "status", "version", "python", "packages", "kernel"):
        assert f'<th style="text-align:left">{column}</th>' in html
    assert "<td" in html and ">envmgr-demo</td>" in html and ">ready</td>" in html
    assert output.data["text/plain"].splitlines()[2].split()[:4] == ["demo", "local", "ready", "1"]

    shown = magic(shell, "show demo").outputs[0].data["text/html"]
    assert "&lt;b&gt;Demo&lt;/b&gt;" in shown and "<b>Demo</b>" not in shown  # escaped
    assert "alpha=1.0" in shown and "envmgr-hello==1.0" in shown
    assert ">v1 *</td>" in magic(shell, "versions demo").outputs[0].data["text/html"]
    assert "== solve ==" in magic(shell, "log demo 1").stdout
    assert "alpha=1.0" in magic(shell, "export demo").stdout
    data = json.loads(magic(shell, "list --json").stdout)
    assert data["environments"] == service.envs.list()
    assert magic(shell, "deactivate demo").stdout.startswith("✓ kernel envmgr-demo removed")
    assert magic(shell, "activate demo").stdout.startswith("✓ kernel envmgr-demo (<b>Demo</b>)")


def test_copy_revert_and_delete_in_a_shell(shell, service):
    service.envs.create({"name": "demo", "conda": ["alpha=1.0"]})
    assert build(service, "local", "demo").status == "succeeded"
    service.envs.update("local", "demo", {"conda": ["alpha=2.0"]})
    assert magic(shell, "build demo").stdout.splitlines()[-1].startswith("✓ built local/demo v2")
    out = magic(shell, "revert demo 1").stdout
    assert out.splitlines()[-1].startswith("✓ reverted local/demo to v1 as v3")
    out = magic(shell, "copy demo --to shared --name team").stdout
    assert out.splitlines()[-1].startswith("✓ copied local/demo v3 to shared/team v1")
    assert service.envs.get("shared", "team")["status"] == "ready"

    failed = magic(shell, "install needs-missing --env demo")
    assert failed.stderr.startswith("✗ build of local/demo v4 failed in phase solve")
    assert "Traceback" not in failed.stderr + failed.stdout
    # the failed install put the spec back: the one version 1 was built from (the revert)
    assert service.envs.get("local", "demo")["spec"]["conda"] == ["alpha=1.0"]

    assert error_line(magic(shell, "delete team --shared")) == (
        "envmgr: delete removes shared/team, all its versions and its kernel: add --yes to confirm"
    )
    assert magic(shell, "delete team --shared --yes").stdout.strip() == "✓ deleted shared/team"
    assert service.envs.list("shared") == []


@pytest.mark.parametrize(
    "line, expected",
    [
        ("create Bad_Name", lambda s: core_message(s.envs.create, {"name": "Bad_Name"})),
        ("show nope", lambda s: core_message(s.envs.get, "local", "nope")),
        ("build nope --shared", lambda s: core_message(s.builds.prepare, "shared", "nope")),
        ("create ok --pip '--index-url=http://evil'",
         lambda s: "argument --pip: expected at least one argument"),
        ("revert demo x", lambda s: core_message(s.builds.revert, "local", "demo", "x")),
        ("export demo --format lock",
         lambda s: core_message(s.envs.export, "local", "demo", "lock")),
        ("uninstall gamma --env demo",
         lambda s: "Package 'gamma' is not in the conda packages of local/demo"),
        ("install gamma",
         lambda s: f"{os.sys.prefix} is not an environment of the local or shared store"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_the_core_message(shell, service, line, expected):
    service.envs.create({"name": "demo"})
    got = error_line(magic(shell, line))
    assert got.startswith(f"envmgr: {expected(service)}"), got


# -- with a running server -----------------------------------------------------------------------


async def test_magics_and_server_see_the_same_state(jp_fetch, shell, config_file):
    out = magic(shell, "create nb --conda gamma --build").stdout
    assert out.splitlines()[-1].startswith("✓ built local/nb v1")
    rest = json.loads((await jp_fetch("env-manager", "environments", "local", "nb")).body)
    assert rest["status"] == "ready" and rest["version"] == 1
    assert json.loads(magic(shell, "show nb --json").stdout) == rest

    body = json.dumps({"name": "fromrest", "conda": ["alpha"]})
    await jp_fetch("env-manager", "environments", method="POST", body=body)
    listed = json.loads(magic(shell, "list --json").stdout)["environments"]
    assert {(e["name"], e["status"]) for e in listed} == {("nb", "ready"), ("fromrest", "saved")}

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("env-manager", "environments", "local", "nope")
    message = json.loads(info.value.response.body)["message"]
    assert error_line(magic(shell, "show nope")) == f"envmgr: {message}"


# -- inside a real kernel ------------------------------------------------------------------------


def execute(kc, code: str, timeout: float = 120) -> dict:
    """Run ``code``; collect stdout, stderr and the display messages it sent."""
    got: dict = {"stdout": "", "stderr": "", "displays": []}

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            got[content["name"]] += content["text"]
        elif kind in ("display_data", "update_display_data"):
            got["displays"].append((kind, content))
        elif kind == "error":
            got["stderr"] += "\n".join(content["traceback"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", got
    return got


def test_install_in_a_running_kernel(service, config_file):
    service.envs.create({"name": "nb"})
    assert build(service, "local", "nb").status == "succeeded"
    km = KernelManager(kernel_name="envmgr-nb")
    # The environment has no jupyter_env_manager: its kernelspec puts (only) this package on
    # the kernel's path, so %load_ext works as a user would type it.
    km.start_kernel(env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        execute(kc, "%load_ext jupyter_env_manager")
        # No rattler here: the magics run the core in the manager's Python (the kernelspec's).
        code = (
            "from jupyter_env_manager.cli.magics import core_runner; print(core_runner().command)"
        )
        out = execute(kc, code)["stdout"]
        assert out.strip() == str([os.sys.executable, "-m", "jupyter_env_manager.cli"])

        got = execute(kc, "%envmgr install --pip envmgr-hello==2.0")
        # the final line once: in the progress display, not printed again below it
        assert "✓ built" not in got["stdout"], got
        assert "Ready to import in this kernel: envmgr-hello 2.0" in got["stdout"]
        # progress: one display, updated in place, ending with the result
        kinds = [kind for kind, _ in got["displays"]]
        assert kinds[0] == "display_data" and "update_display_data" in kinds
        display_id = got["displays"][0][1]["transient"]["display_id"]
        last = got["displays"][-1][1]
        assert last["transient"]["display_id"] == display_id
        assert "pip ✓" in last["data"]["text/plain"] and "✓ built" in last["data"]["text/html"]
        finals = {  # what the notebook shows in the end: the last version of each display
            (c.get("transient") or {}).get("display_id") or i: c["data"].get("text/plain", "")
            for i, (_, c) in enumerate(got["displays"])
        }
        assert sum(text.count("✓ built") for text in finals.values()) == 1, finals
        out = execute(kc, "import envmgr_hello; print(envmgr_hello.__version__)")["stdout"]
        assert out.strip() == "2.0"

        got = execute(kc, "%envmgr install --pip envmgr-hello==1.0")
        assert "Restart the kernel to use the new versions of: envmgr-hello" in got["stdout"]
        got = execute(kc, "%envmgr install pytool")
        assert "Ready to import in this kernel: pytool 1.0" in got["stdout"]
        out = execute(kc, "import pytool; print(pytool.__version__)")["stdout"]
        assert out.strip() == "1.0"
        got = execute(kc, "%envmgr uninstall pytool")
        assert "Restart the kernel to use the new versions of: pytool" in got["stdout"]

        env = service.envs.get("local", "nb")
        assert env["version"] == 5 and env["status"] == "ready"
        assert env["spec"] == {**env["spec"], "conda": [], "pip": ["envmgr-hello==1.0"]}

        got = execute(kc, "%envmgr list")
        [(_, content)] = got["displays"]
        assert "<table" in content["data"]["text/html"]
        assert ">nb</td>" in content["data"]["text/html"]
        got = execute(kc, "%envmgr show nope")
        assert got["stderr"] == "envmgr: No environment 'nope' in the local store\n"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
