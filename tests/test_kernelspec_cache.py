"""``GET /api/kernelspecs`` from a cache that re-reads only the kernelspecs that changed
(issue 14): what another process writes, rewrites or removes is served at the next request;
``c.EnvManager.cache_kernelspecs = False`` keeps jupyter_server's own manager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from jupyter_env_manager.server.kernelspecs import CachingKernelSpecManager

OLD_NS = 10**18  # 2001: a stat this old is trusted (see RACY_S)


@pytest.fixture
def jp_server_config(envmgr_settings, request):  # noqa: F811
    from traitlets.config import Config

    settings = dict(envmgr_settings, watch_interval_s=0)
    if "cache_off" in request.node.name:
        settings["cache_kernelspecs"] = False
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_env_manager": True},
                "allow_unauthenticated_access": False,
            },
            "EnvManager": settings,
        }
    )


def kernels_dir(jp_serverapp) -> Path:
    return Path(jp_serverapp.kernel_spec_manager.user_kernel_dir)


def write_elsewhere(directory: Path, display_name: str) -> None:
    """Another process (``jupyter kernelspec install``, the CLI) writes a kernelspec in place."""
    code = (
        "import json, os, sys\n"
        "d = sys.argv[1]\n"
        "os.makedirs(d, exist_ok=True)\n"
        "spec = {'argv': ['python', '-m', 'ipykernel_launcher', '-f', '{connection_file}'],\n"
        "        'display_name': sys.argv[2], 'language': 'python'}\n"
        "with open(os.path.join(d, 'kernel.json'), 'w') as f:\n"
        "    json.dump(spec, f)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(directory), display_name], check=True)


def age(directory: Path) -> None:
    """Make a kernelspec's stat old enough to be trusted (as any not written just now)."""
    for path in (directory / "kernel.json", directory):
        os.utime(path, ns=(OLD_NS, OLD_NS))


async def get_specs(jp_fetch) -> dict:
    response = await jp_fetch("api", "kernelspecs")
    return json.loads(response.body)["kernelspecs"]


async def test_kernelspecs_written_by_other_processes_are_served(jp_fetch, jp_serverapp):
    manager = jp_serverapp.kernel_spec_manager
    assert isinstance(manager, CachingKernelSpecManager)
    assert jp_serverapp.web_app.settings["kernel_spec_manager"] is manager
    assert jp_serverapp.kernel_manager.kernel_spec_manager is manager
    top = kernels_dir(jp_serverapp)
    write_elsewhere(top / "other", "Other")
    specs = await get_specs(jp_fetch)
    assert specs["other"]["spec"]["display_name"] == "Other"
    assert specs["other"]["name"] == "other" and specs["other"]["resources"] == {}
    # Rewritten in place with the same size, within the same clock tick: the stat is too recent
    # to be trusted, so it is read again.
    write_elsewhere(top / "other", "Uther")
    assert (await get_specs(jp_fetch))["other"]["spec"]["display_name"] == "Uther"
    # Old, unchanged kernelspecs are not read again; a changed one is, and a logo added is served.
    write_elsewhere(top / "third", "Third")
    for directory in top.iterdir():  # ours, and pytest-jupyter's "echo"
        age(directory)
    await get_specs(jp_fetch)
    reads = manager.reads
    await get_specs(jp_fetch)
    assert manager.reads == reads
    write_elsewhere(top / "third", "Third, renamed")
    (top / "third" / "logo-64x64.png").write_bytes(b"png")
    specs = await get_specs(jp_fetch)
    assert manager.reads == reads + 1
    assert specs["third"]["spec"]["display_name"] == "Third, renamed"
    assert specs["third"]["resources"]["logo-64x64"].endswith("/kernelspecs/third/logo-64x64.png")
    assert specs["other"]["spec"]["display_name"] == "Uther"
    # Removed by another process: gone at the next request.
    subprocess.run(["rm", "-r", "--", str(top / "other")], check=True)
    assert "other" not in await get_specs(jp_fetch)
    # The answer is jupyter_server's, from its own manager reading the same folders.
    answer = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert manager._encoded is not None  # served by the extension's handler, encoded once
    assert answer["default"] == jp_serverapp.kernel_manager.default_kernel_name
    stock = KernelSpecManager(kernel_dirs=manager.kernel_dirs).get_all_specs()
    assert set(answer["kernelspecs"]) == set(stock)
    for name, model in answer["kernelspecs"].items():
        assert set(model) == {"name", "spec", "resources"}
        assert model["name"] == name and model["spec"] == stock[name]["spec"]
    one = json.loads((await jp_fetch("api", "kernelspecs", "third")).body)
    assert one == answer["kernelspecs"]["third"]


async def test_an_environments_kernel_is_served_once_written(
    jp_fetch, jp_serverapp, envmgr_settings
):
    service = jp_serverapp.web_app.settings["env_manager"]
    before = await get_specs(jp_fetch)
    assert "envmgr-mine" not in before
    (Path(envmgr_settings["local_root"]) / "mine" / "conda-meta").mkdir(parents=True)
    service.kernels.activate("local", "mine")
    specs = await get_specs(jp_fetch)
    assert specs["envmgr-mine"]["spec"]["metadata"]["env_manager"]["name"] == "mine"
    service.kernels.deactivate("local", "mine")
    assert "envmgr-mine" not in await get_specs(jp_fetch)


async def test_cache_off_keeps_the_servers_manager(jp_fetch, jp_serverapp):
    manager = jp_serverapp.kernel_spec_manager
    assert type(manager) is KernelSpecManager
    write_elsewhere(kernels_dir(jp_serverapp) / "other", "Other")
    assert (await get_specs(jp_fetch))["other"]["spec"]["display_name"] == "Other"
