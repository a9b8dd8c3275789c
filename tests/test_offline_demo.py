"""``jupyter envmgr demo``: a first run with no conda channel, and the README's offline block.

The demo's build runs in a new network namespace (``unshare -n``) so it cannot use any network.
The README block runs, as written, in a new virtualenv (gated like the quick-start test:
ENVMGR_TEST_QUICKSTART=1, it installs from PyPI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import get_when_up, run_in_kernel
from test_offline import needs_netns

SOURCE = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "jupyter_env_manager.cli"]


def test_demo_prints_settings_and_describes_its_packages(tmp_path):
    done = subprocess.run(
        [*CLI, "demo", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    url = (tmp_path / "demo" / "channel").as_uri()
    assert f"c.EnvManager.channels = [{url!r}]" in done.stdout
    assert "c.EnvManager.pip_no_index = True" in done.stdout
    readme = (tmp_path / "demo" / "README.md").read_text()
    for package in ("python", "ipykernel", "pytool", "alpha", "gamma", "delta", "envmgr-hello"):
        assert f"`{package}`" in readme
    assert not (Path(os.environ["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json").exists()


@needs_netns
def test_demo_configure_keeps_other_settings_and_builds_with_no_network(tmp_path):
    config = Path(os.environ["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    local_root = str(tmp_path / "my-envs")
    config.write_text(
        json.dumps({"ServerApp": {"port": 9999}, "EnvManager": {"local_root": local_root}})
    )
    done = subprocess.run(
        [*CLI, "demo", str(tmp_path / "demo"), "--configure"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(config.read_text())
    assert data["ServerApp"] == {"port": 9999}  # kept
    assert data["EnvManager"]["local_root"] == local_root  # kept
    assert data["EnvManager"]["channels"] == [(tmp_path / "demo" / "channel").as_uri()]

    create = "create demo --conda pytool --pip envmgr-hello --build".split()
    done = subprocess.run(
        ["unshare", "-n", *CLI, *create], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (Path(local_root) / "demo" / "conda-meta").is_dir()
    out, reply = run_in_kernel("envmgr-demo", "import pytool, envmgr_hello; print(6 * 7)")
    assert reply["status"] == "ok" and "42" in out


def test_demo_refuses_a_config_that_is_not_json(tmp_path):
    config = Path(os.environ["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("{not json")
    done = subprocess.run(
        [*CLI, "demo", str(tmp_path / "demo"), "--configure"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and "is not readable JSON" in done.stderr
    assert config.read_text() == "{not json"  # never overwritten


def readme_offline_block() -> list[str]:
    text = (SOURCE / "README.md").read_text()
    section = text.split("### No access to conda-forge? Try it offline", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_offline_block_is_three_commands():
    lines = readme_offline_block()
    assert len(lines) == 3 and lines[-1].startswith("jupyter lab")


@pytest.mark.skipif(
    os.environ.get("ENVMGR_TEST_QUICKSTART") != "1",
    reason="installs from PyPI into a new virtualenv: ENVMGR_TEST_QUICKSTART=1 (CI sets it)",
)
def test_readme_offline_block_in_a_fresh_virtualenv(tmp_path):
    """`pip install .` (the quick start), then the README's offline block as written, with no
    conda channel reachable: its commands run in a new network namespace where possible, else
    with every proxy pointing at a closed port. Ends with a built environment whose kernel,
    listed by the `jupyter lab` of the block, executes code."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    source = tmp_path / "source"
    shutil.copytree(
        SOURCE,
        source,
        ignore=shutil.ignore_patterns(".git", "node_modules", ".venv", "bench", "install.json"),
    )
    shutil.copy(SOURCE / "install.json", source / "install.json")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)]
    subprocess.run(pip, check=True, timeout=900)
    home = tmp_path / "user-home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "CONDA", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env.update({"HOME": str(home), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if not shutil.which("unshare"):
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            env[name] = f"http://127.0.0.1:{port}"
    jail = ["unshare", "-n"] if shutil.which("unshare") else []
    *commands, lab_line = readme_offline_block()
    for line in commands:
        argv = line.split()  # the block has no quoting or shell syntax
        done = subprocess.run(
            [*jail, *argv], env=env, cwd=source, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
    lab = subprocess.Popen(
        [*lab_line.split(), "--no-browser", f"--port={port}", "--IdentityProvider.token=qs"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        specs = get_when_up(lab, port, "api/kernelspecs", "qs")["kernelspecs"]
        assert "envmgr-demo" in specs
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    code = (
        "from jupyter_client.manager import start_new_kernel\n"
        "km, kc = start_new_kernel(kernel_name='envmgr-demo', startup_timeout=120)\n"
        "out = []\n"
        "kc.execute_interactive('import pytool; print(6 * 7)', timeout=60,\n"
        "    output_hook=lambda m: out.append(m['content'].get('text', '')))\n"
        "km.shutdown_kernel(now=True)\n"
        "print(''.join(out))\n"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "42" in done.stdout, done.stdout + done.stderr
