"""Private wheels: a wheel built in the test, added to an environment from every door, stored
with it, locked with its sha256, installed from there, and taken along by a copy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import build
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.cli.commands import Progress
from jupyter_env_manager.core.errors import ValidationError
from jupyter_env_manager.core.runner import ForegroundRunner
from jupyter_env_manager.testing.wheels import write_wheel


@pytest.fixture
def private_wheel(tmp_path) -> Path:
    directory = tmp_path / "mine"
    directory.mkdir()
    return write_wheel(
        directory, "envmgr-private", "0.1", {"envmgr_private/__init__.py": "SECRET = 42\n"}
    )


@pytest.fixture
def env(service):
    service.envs.create({"name": "w", "conda": ["alpha=1.0"]})
    assert build(service, "local", "w").status == "succeeded"
    service.runner = ForegroundRunner(service, Progress())
    return service


def imports(prefix: Path, code: str) -> str:
    done = subprocess.run(
        [str(prefix / "bin" / "python"), "-I", "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_private_wheel_is_stored_locked_installed_and_copied(env, private_wheel):
    service = env
    data = private_wheel.read_bytes()
    result = service.wheels.add("local", "w", private_wheel.name, data)
    assert result.status == "succeeded", result.error
    view = service.envs.get("local", "w")
    assert view["spec"]["pip"] == ["envmgr-private==0.1"]
    assert view["spec"]["wheels"] == {"envmgr-private": private_wheel.name}
    stored = service.local.env_dir("w") / "wheels" / private_wheel.name
    assert stored.read_bytes() == data
    lock = json.loads(service.envs.export("local", "w", "lock")[0])
    [entry] = [d for d in lock["pip"] if d["name"] == "envmgr-private"]
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["wheel"] == private_wheel.name
    assert imports(Path(view["prefix"]), "import envmgr_private; print(envmgr_private.SECRET)")
    yml = service.envs.export("local", "w", "environment.yml")[0]
    assert f"# envmgr-private: a private wheel, {private_wheel.name}" in yml
    # a copy into the shared store takes the wheel along: stored there, readable by the team
    private_wheel.unlink()  # the user's file is gone: only the stored one can serve
    _, copied = service.sharing.copy("local", "w", "shared")
    assert copied.status == "succeeded", copied.error
    shared_stored = service.shared.env_dir("w") / "wheels" / stored.name
    assert shared_stored.read_bytes() == data
    assert stat.S_IMODE(shared_stored.stat().st_mode) & 0o044 == 0o044
    prefix = Path(service.envs.get("shared", "w")["prefix"])
    assert imports(prefix, "import envmgr_private; print(envmgr_private.SECRET)") == "42"
    # and a rebuild of the copy from its spec installs it from there again
    assert build(service, "shared", "w").status == "succeeded"
    assert imports(prefix, "import envmgr_private; print(envmgr_private.SECRET)") == "42"


@pytest.mark.parametrize(
    "rename, message",
    [
        ("envmgr_private-0.1-cp27-cp27m-manylinux1_x86_64.whl", "does not fit this environment"),
        ("envmgr_private-0.2-py3-none-any.whl", "its file name must match its metadata"),
        ("other-0.1-py3-none-any.whl", "its file name must match its metadata"),
        ("../envmgr_private-0.1-py3-none-any.whl", "Invalid wheel file name"),
        ("envmgr_private.zip", "Invalid wheel file name"),
        ("envmgr_private-0.1.whl", "Invalid wheel file name"),
    ],
)
def test_a_wheel_that_does_not_fit_is_refused_and_nothing_changes(
    env, private_wheel, rename, message
):
    service = env
    with pytest.raises(ValidationError) as info:
        service.wheels.add("local", "w", rename, private_wheel.read_bytes())
    assert message in info.value.message
    assert not (service.local.env_dir("w") / "wheels").exists()
    assert service.local.versions("w") == [1]


def test_not_a_wheel_archive_is_refused(env):
    with pytest.raises(ValidationError, match="is not a zip archive"):
        env.wheels.add("local", "w", "envmgr_private-0.1-py3-none-any.whl", b"not a zip")


def test_cli_install_wheel(env, private_wheel, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", "install", "w", "--wheel",
         str(private_wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("✓ built local/w v2")
    bad = tmp_path / "envmgr_private-0.1-cp27-cp27m-win32.whl"
    shutil.copy(private_wheel, bad)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", "install", "--env", "w", "--wheel",
         str(bad)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1 and "does not fit this environment's python" in proc.stderr


async def test_rest_wheel_upload_and_size_limit(jp_fetch, jp_serverapp, private_wheel, monkeypatch):
    from jupyter_env_manager.core import wheels

    service = jp_serverapp.web_app.settings["env_manager"]
    service.envs.create({"name": "w", "conda": ["alpha=1.0"]})
    assert build(service, "local", "w").status == "succeeded"
    r = await jp_fetch(
        "env-manager", "environments", "local", "w", "wheels",
        method="POST", body=private_wheel.read_bytes(), params={"filename": private_wheel.name},
    )  # fmt: skip
    assert r.code == 202 and r.headers["Location"].endswith("/builds/2")
    for _ in range(600):
        r = await jp_fetch("env-manager", "environments", "local", "w", "builds", "2")
        if json.loads(r.body)["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.1)
    assert json.loads(r.body)["status"] == "succeeded"
    monkeypatch.setattr(wheels, "MAX_WHEEL_BYTES", 100)
    for params, code, message in [
        ({"filename": private_wheel.name}, 413, "The wheel is larger than"),
        ({}, 400, "'filename' is required"),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "env-manager", "environments", "local", "w", "wheels",
                method="POST", body=private_wheel.read_bytes(), params=params,
            )  # fmt: skip
        assert info.value.code == code
        assert message in json.loads(info.value.response.body)["message"]
    assert service.local.versions("w") == [1, 2]
