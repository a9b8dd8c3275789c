"""Kernels for every language an environment ships: registered, started with the environment
activated, answering an execute request; removed with the environment."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import build, run_in_kernel
from jupyter_client.kernelspec import KernelSpecManager

from jupyter_env_manager.core import kernels
from jupyter_env_manager.core.kernel_languages import split_extra

ECHO = "envmgr-polyglot.envmgr-echo"


@pytest.fixture
def polyglot(service):
    """A built environment shipping the echo kernel, with an activate.d script (delta)."""
    service.envs.create({"name": "polyglot", "conda": ["envmgr-echo-kernel", "delta"]})
    result = build(service, "local", "polyglot")
    assert result.status == "succeeded", result.error
    return service.envs.get("local", "polyglot")


def test_a_shipped_kernel_gets_its_own_kernelspec_started_activated(polyglot):
    prefix = Path(polyglot["prefix"]).resolve()  # the version's own directory
    specs = KernelSpecManager().find_kernel_specs()
    assert {"envmgr-polyglot", ECHO} <= set(specs)
    spec = json.loads((kernels.kernels_dir() / ECHO / "kernel.json").read_text())
    assert spec["display_name"] == "Echo (echo) in polyglot" and spec["language"] == "echo"
    # the version launcher, then the activation launcher, as for the Python kernel
    argv = spec["argv"]
    assert argv[:3] == [sys.executable, "-m", "jupyter_env_manager.core.launch"]
    assert argv[argv.index("--") + 1] == shutil.which("bash")
    assert spec["argv"][-5:] == [
        str(prefix / "bin" / "python"),
        "-m",
        "envmgr_echo_kernel",
        "-f",
        "{connection_file}",
    ]
    assert "PYTHONPATH" not in spec["env"]  # the magics' package is the Python kernel's only
    assert spec["metadata"]["env_manager"] == {
        "scope": "local",
        "name": "polyglot",
        "version": 1,
        "kernel": "envmgr-echo",
    }
    out, reply = run_in_kernel(ECHO, "env CONDA_PREFIX")
    assert reply["status"] == "ok" and out == str(prefix)
    assert run_in_kernel(ECHO, "env DELTA_ACTIVATED")[0] == "yes"  # activate.d ran
    assert run_in_kernel(ECHO, "env R_LIBS_USER")[0] == str(prefix / "lib" / "R" / "library")
    assert run_in_kernel(ECHO, "hello there")[0] == "hello there"


def test_r_libraries_never_come_from_the_home(polyglot, monkeypatch):
    monkeypatch.setenv("R_LIBS_USER", str(Path.home() / "R" / "library"))
    monkeypatch.setenv("R_LIBS_SITE", "/usr/local/lib/R/site-library")
    code = "import os; print(os.environ['R_LIBS_USER'], os.environ['R_LIBS_SITE'])"
    out, _ = run_in_kernel("envmgr-polyglot", code)
    library = str(Path(polyglot["prefix"]).resolve() / "lib" / "R" / "library")
    assert out.split() == [library, library]


def test_shipped_kernels_follow_the_environment(service, polyglot):
    kdir = kernels.kernels_dir()
    service.kernels.deactivate("local", "polyglot")
    assert not (kdir / ECHO).exists() and not (kdir / "envmgr-polyglot").exists()
    service.kernels.activate("local", "polyglot")
    assert (kdir / ECHO / "kernel.json").is_file()
    assert service.kernels.sync()["created"] == []  # all current: nothing rewritten
    shutil.rmtree(kdir / ECHO)  # lost: sync brings it back
    assert service.kernels.sync()["updated"] == ["envmgr-polyglot"]
    assert (kdir / ECHO / "kernel.json").is_file()
    (kdir / "envmgr-gone.ir").mkdir()  # the shipped kernel of an environment that is gone
    (kdir / "envmgr-gone.ir" / "kernel.json").write_text("{}")
    assert "envmgr-gone.ir" in service.kernels.sync()["removed"]
    # a version without the kernel package: its kernelspec goes at the build
    service.envs.update("local", "polyglot", {"conda": ["delta"]})
    assert build(service, "local", "polyglot").status == "succeeded"
    assert not (kdir / ECHO).exists() and (kdir / "envmgr-polyglot").exists()
    service.envs.update("local", "polyglot", {"conda": ["envmgr-echo-kernel"]})
    assert build(service, "local", "polyglot").status == "succeeded"
    assert (kdir / ECHO).exists()
    service.envs.delete("local", "polyglot")
    assert not (kdir / ECHO).exists()


def test_a_python_environment_without_ipykernel_gets_only_its_other_kernel(service, polyglot):
    store = service.local
    prefix = store.root / "noipy"
    os.rename(store.active_prefix("polyglot"), prefix)  # a plain prefix, as conda makes
    os.unlink(store.prefix("polyglot"))
    service.envs.delete("local", "polyglot")
    for path in prefix.glob("lib/python3*/site-packages/ipykernel"):
        shutil.rmtree(path)
    kdir = kernels.kernels_dir()
    service.kernels.activate("local", "noipy")
    assert (kdir / "envmgr-noipy.envmgr-echo" / "kernel.json").is_file()
    assert not (kdir / "envmgr-noipy").exists()  # its Python kernelspec could not start
    assert service.kernels.sync() == {"created": [], "updated": [], "removed": [], "failed": []}


def test_extra_kernel_names_never_clash_with_environment_kernel_names():
    assert split_extra("envmgr-demo.ir") == ("envmgr-demo", "ir")
    assert split_extra("envmgr-shared-demo.ir") == ("envmgr-shared-demo", "ir")
    assert split_extra("envmgr-local.shared-x.ir") == ("envmgr-local.shared-x", "ir")
    assert split_extra("envmgr-local.shared-x") is None  # local env shared-x's Python kernel
    assert split_extra("envmgr-demo") is None and split_extra("other.ir") is None
