"""A full disk in the middle of a build leaves the version in use untouched (a real tmpfs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import build

from jupyter_env_manager.config import EnvManager
from jupyter_env_manager.core.service import EnvService
from jupyter_env_manager.testing.channel import PackageDef, build_channel


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MiB tmpfs (needs root: mounting is what a full disk test takes)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_mid_build_keeps_the_version_in_use(small_disk, envmgr_config, tmp_path):
    big = PackageDef(
        "bigdata",
        "1.0",
        files={f"share/bigdata/blob{i}.bin": os.urandom(4 * 1024 * 1024) for i in range(5)},
    )
    channel = build_channel(tmp_path / "big", extra=[big], defaults=False, host_packages=())
    envmgr_config.EnvManager.local_root = str(small_disk / "envs")
    envmgr_config.EnvManager.channels = [*envmgr_config.EnvManager.channels, channel]
    envmgr_config.EnvManager.kernel_packages = []  # ipykernel alone would not fit in 12 MiB
    service = EnvService(EnvManager(config=envmgr_config))
    service.envs.create({"name": "tiny", "conda": ["alpha=1.0", "gamma"]})
    assert build(service, "local", "tiny").status == "succeeded"
    prefix = Path(service.envs.get("local", "tiny")["prefix"])
    before = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))

    service.envs.update("local", "tiny", {"conda": ["alpha=1.0", "gamma", "bigdata"]})
    result = build(service, "local", "tiny")
    assert result.status == "failed"
    assert result.phase in ("download", "link")
    assert "No space left on device" in result.error or "os error 28" in result.error
    env = service.envs.get("local", "tiny")
    assert env["version"] == 1 and env["status"] == "failed"
    assert sorted(p.name for p in (prefix / "conda-meta").glob("*.json")) == before
    real = prefix.resolve()  # the version's own directory
    assert (prefix / "etc" / "gamma.conf").read_text().strip() == f"prefix={real}"
    assert list((small_disk / "envs" / ".envmgr" / "staging").iterdir()) == []
    # the space is given back: the next build that fits succeeds
    service.envs.update("local", "tiny", {"conda": ["alpha=2.0", "gamma"]})
    assert build(service, "local", "tiny").status == "succeeded"
