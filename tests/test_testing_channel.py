"""The test channel and wheelhouse really work with py-rattler, uv, pip and jupyter_client.

Also pins down the py-rattler behaviours the engine relies on (staging builds, lock files,
re-installing records into another prefix), so that an upgrade that changes them fails here.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rattler
from jupyter_client.manager import KernelManager
from rattler import Gateway, LockFile, LockPlatform, MatchSpec, PrefixRecord
from rattler.exceptions import SolverError
from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

from jupyter_env_manager.testing.channel import (
    PREFIX_PLACEHOLDER,
    build_channel_async,
    host_package_archive,
    main,
    synthetic,
)

PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"


async def solve(channel: str, specs: list[str]) -> list[rattler.RepoDataRecord]:
    return await rattler.solve([channel], specs, gateway=Gateway())


async def make_env(channel, specs, prefix, pkgs_cache, **install_kwargs):
    records = await solve(channel, specs)
    await rattler.install(
        records, target_prefix=prefix, cache_dir=pkgs_cache, show_progress=False, **install_kwargs
    )
    return records


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    """Run without PYTHONPATH, so an environment's interpreter sees only its own packages."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=120, **kwargs
    )


def names(records) -> set[str]:
    return {r.name.normalized for r in records}


async def test_alpha_2_pulls_beta(test_channel, pkgs_cache, tmp_path):
    prefix = tmp_path / "prefix"
    records = await make_env(test_channel, ["alpha 2.0.*"], prefix, pkgs_cache)
    assert names(records) == {"alpha", "beta"}
    assert (prefix / "share/alpha/VERSION").read_text() == "2.0\n"
    assert (prefix / "share/beta/VERSION").is_file()
    assert len(list((prefix / "conda-meta").glob("*.json"))) == 2
    assert names(await solve(test_channel, ["alpha <2"])) == {"alpha"}


async def test_gamma_placeholder_is_replaced(test_channel, pkgs_cache, tmp_path):
    prefix = tmp_path / "prefix"
    await make_env(test_channel, ["gamma"], prefix, pkgs_cache)
    assert (prefix / "etc/gamma.conf").read_text() == f"prefix={prefix}\n"
    assert PREFIX_PLACEHOLDER not in (prefix / "bin/gamma").read_text()
    assert os.access(prefix / "bin/gamma", os.X_OK)

    staging, final = tmp_path / "staging", tmp_path / "final"
    await make_env(test_channel, ["gamma"], staging, pkgs_cache, alternative_target_prefix=final)
    assert (staging / "etc/gamma.conf").read_text() == f"prefix={final}\n"


async def test_delta_activation(test_channel, pkgs_cache, tmp_path):
    prefix = tmp_path / "prefix"
    await make_env(test_channel, ["delta"], prefix, pkgs_cache)
    variables = ActivationVariables(None, ["/usr/bin", "/bin"], PathModificationBehavior.Replace)
    result = activate(prefix, variables, Shell.bash)
    assert "DELTA_VAR=from-env-vars" in result.script
    assert result.path[0] == prefix / "bin"

    shell = run(["bash", "--norc", "--noprofile", "-c", result.script + "\nenv"])
    assert shell.returncode == 0, shell.stderr
    env = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert env["DELTA_ACTIVATED"] == "yes"
    assert env["DELTA_HOME"] == f"{prefix}/share/delta"
    assert env["DELTA_VAR"] == "from-env-vars"
    assert env["CONDA_PREFIX"] == str(prefix)


async def test_python_prefix_is_an_isolated_interpreter(test_channel, pkgs_cache, tmp_path):
    prefix = tmp_path / "prefix"
    await make_env(test_channel, ["python", "pytool", "badmod"], prefix, pkgs_cache)
    probe = run([prefix / "bin/python", "-c", "import json, sys; print(json.dumps(sys.path))"])
    assert probe.returncode == 0, probe.stderr
    site = str(prefix / f"lib/python{PY_XY}/site-packages")
    assert site in json.loads(probe.stdout)
    assert not [p for p in json.loads(probe.stdout) if p.endswith("site-packages") and p != site]
    assert run([prefix / "bin/python", "-c", "import sys; print(sys.prefix)"]).stdout.strip() == (
        str(prefix)
    )
    tool = run([prefix / "bin/pytool"])
    assert tool.stdout.strip() == f"pytool 1.0 in {prefix}"
    assert (prefix / "bin/pytool").read_text().startswith(f"#!{prefix}/bin/python")
    broken = run([prefix / "bin/python", "-c", "import badmod"])
    assert broken.returncode != 0
    assert "badmod is broken on purpose" in broken.stderr
    # The host's packages are not visible in the environment.
    assert run([prefix / "bin/python", "-c", "import traitlets"]).returncode != 0


async def test_needs_missing_fails_to_solve(test_channel):
    with pytest.raises(SolverError, match="envmgr-no-such-package"):
        await solve(test_channel, ["needs-missing"])
    with pytest.raises(SolverError, match="no-such-thing"):
        await solve(test_channel, ["no-such-thing"])


async def test_ipykernel_prefix_runs_a_kernel(test_channel, pkgs_cache, tmp_path, jp_kernel_dir):
    prefix = tmp_path / "prefix"
    await make_env(test_channel, ["python", "ipykernel"], prefix, pkgs_cache)
    spec_dir = Path(jp_kernel_dir) / "testenv"
    spec_dir.mkdir()
    argv = [str(prefix / "bin/python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "testenv", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))

    manager = KernelManager(kernel_name="testenv")
    manager.start_kernel(env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        outputs = []
        msg_id = client.execute("import sys; print(sys.prefix)\n1+1")
        while True:
            msg = client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                outputs.append(msg["content"]["text"].strip())
            elif msg["msg_type"] == "execute_result":
                outputs.append(msg["content"]["data"]["text/plain"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert outputs == [str(prefix), "2"]


async def test_wheels_install_with_uv(test_channel, pkgs_cache, wheelhouse, tmp_path):
    prefix = tmp_path / "prefix"
    await make_env(test_channel, ["python"], prefix, pkgs_cache)
    python = prefix / "bin/python"
    uv = ["uv", "pip", "install", "--python", python, "--no-index", "--find-links", wheelhouse]
    result = run([*uv, "envmgr-hello==2.0", "envmgr-uses-dep"])
    assert result.returncode == 0, result.stderr
    assert run([prefix / "bin/envmgr-hello"]).stdout.strip() == f"envmgr-hello 2.0 from {prefix}"
    check = run([python, "-c", "import envmgr_uses_dep as m; print(m.dep_version)"])
    assert check.stdout.strip() == "1.0"
    assert run([*uv, "envmgr-hello==1.0"]).returncode == 0
    assert "envmgr-hello 1.0" in run([prefix / "bin/envmgr-hello"]).stdout


async def test_wheels_install_with_pip(test_channel, pkgs_cache, wheelhouse, tmp_path):
    prefix = tmp_path / "prefix"
    await make_env(test_channel, ["python", "pip"], prefix, pkgs_cache)
    argv = [prefix / "bin/python", "-m", "pip", "install", "--no-index", "--find-links", wheelhouse]
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}
    result = run([*argv, "envmgr-uses-dep"], env=env)
    assert result.returncode == 0, result.stderr
    check = run([prefix / "bin/python", "-c", "import envmgr_uses_dep as m; print(m.dep_version)"])
    assert check.stdout.strip() == "1.0"


async def test_synthetic_packages(tmp_path):
    url = await build_channel_async(
        tmp_path / "channel", defaults=False, host_packages=(), extra=synthetic(12, 4)
    )
    records = await solve(url, ["synth-011"])
    assert len(records) == 12
    prefix = tmp_path / "prefix"
    await rattler.install(
        records, target_prefix=prefix, cache_dir=tmp_path / "pkgs", show_progress=False
    )
    files = list((prefix / "share/synth").rglob("*.txt"))
    assert len(files) == 12 * 4
    assert (
        (prefix / "share/synth/synth-005/file-000.txt").read_text().startswith(f"root={prefix}\n")
    )


def test_cli_prints_the_channel_url(tmp_path, capsys):
    main([str(tmp_path / "ch"), "--synthetic", "3", "--files", "2", "--no-host-packages"])
    assert capsys.readouterr().out.strip() == (tmp_path / "ch").resolve().as_uri()
    repodata = json.loads((tmp_path / "ch/noarch/repodata.json").read_text())
    assert {"synth-002", "alpha", "gamma"} <= {p["name"] for p in repodata["packages"].values()}


def test_host_packages_are_cached(tmp_path):
    first = host_package_archive("pip", tmp_path)
    mtime = first.stat().st_mtime_ns
    assert host_package_archive("pip", tmp_path) == first
    assert first.stat().st_mtime_ns == mtime


# ---- py-rattler behaviours the engine relies on ------------------------------------------------


async def test_staging_install_leaves_no_trace_of_the_staging_path(
    test_channel, pkgs_cache, tmp_path
):
    staging, final = tmp_path / "staging-1234", tmp_path / "prefix"
    await make_env(
        test_channel,
        ["python", "pytool", "gamma", "delta"],
        staging,
        pkgs_cache,
        alternative_target_prefix=final,
    )
    mentions = run(["grep", "-rl", "--", str(staging), staging])
    assert mentions.stdout == ""
    staging.rename(final)
    assert run([final / "bin/pytool"]).stdout.strip() == f"pytool 1.0 in {final}"


async def test_requested_specs_needs_the_inner_match_spec(test_channel, pkgs_cache, tmp_path):
    records = await solve(test_channel, ["alpha 2.0.*"])
    with pytest.raises(TypeError, match="PyMatchSpec"):
        await rattler.install(
            records,
            target_prefix=tmp_path / "a",
            cache_dir=pkgs_cache,
            show_progress=False,
            requested_specs=[MatchSpec("alpha 2.0.*")],
        )
    await rattler.install(
        records,
        target_prefix=tmp_path / "b",
        cache_dir=pkgs_cache,
        show_progress=False,
        requested_specs=[MatchSpec("alpha 2.0.*")._match_spec],
    )
    (meta,) = glob.glob(str(tmp_path / "b/conda-meta/alpha-*.json"))
    assert json.loads(Path(meta).read_text())["requested_specs"] == ["alpha 2.0.*"]


async def test_lock_file_round_trip_installs_without_solving(test_channel, pkgs_cache, tmp_path):
    records = await solve(test_channel, ["python", "pytool", "alpha"])
    platform = LockPlatform(str(rattler.Subdir.current()))
    lock = LockFile([platform])
    for record in records:
        lock.add_conda_package("default", platform, record)
    lock.to_path(tmp_path / "prefix.lock")

    environment = LockFile.from_path(tmp_path / "prefix.lock").environment("default")
    locked = environment.conda_repodata_records()[platform.name]
    assert sorted(r.file_name for r in locked) == sorted(r.file_name for r in records)
    prefix = tmp_path / "prefix"
    await rattler.install(locked, target_prefix=prefix, cache_dir=pkgs_cache, show_progress=False)
    assert run([prefix / "bin/pytool"]).returncode == 0


async def test_prefix_records_reinstall_into_another_prefix(test_channel, pkgs_cache, tmp_path):
    source, copy = tmp_path / "source", tmp_path / "copy"
    await make_env(test_channel, ["python", "pytool", "gamma"], source, pkgs_cache)
    records = [PrefixRecord.from_path(p) for p in sorted((source / "conda-meta").glob("*.json"))]
    await rattler.install(records, target_prefix=copy, cache_dir=pkgs_cache, show_progress=False)
    assert (copy / "etc/gamma.conf").read_text() == f"prefix={copy}\n"
    assert run(["grep", "-rl", "--", str(source), copy]).stdout == ""
    assert run([copy / "bin/pytool"]).stdout.strip() == f"pytool 1.0 in {copy}"
    shutil.rmtree(source)
    assert run([copy / "bin/pytool"]).returncode == 0


def test_fixtures_isolate_jupyter_and_configure_envmanager(envmgr_config, tmp_path):
    from jupyter_core.paths import jupyter_data_dir

    from jupyter_env_manager.config import EnvManager

    assert Path(jupyter_data_dir()).is_relative_to(tmp_path)
    assert Path.home().is_relative_to(tmp_path)
    settings = EnvManager(config=envmgr_config)
    assert settings.channels[0].startswith("file://")
    assert Path(settings.local_root).is_relative_to(tmp_path)
    assert Path(settings.shared_root).is_relative_to(tmp_path)
    assert settings.pip_no_index and Path(settings.pip_find_links[0]).is_dir()
