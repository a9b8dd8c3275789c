"""Bundles: export the version in use with every archive and wheel; import it with no network.

The import runs through the CLI in a new network namespace (``unshare -n``), with the channels
configured to a closed port, no wheelhouse and an empty package cache: only the bundle can
provide anything.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import build, run_in_kernel
from test_offline import closed_port, needs_netns
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.core.bundle import import_bundle
from jupyter_env_manager.core.errors import ValidationError

CLI = [sys.executable, "-m", "jupyter_env_manager.cli"]


@pytest.fixture
def bundle(service, tmp_path) -> Path:
    service.envs.create({"name": "src", "conda": ["pytool", "alpha"], "pip": ["envmgr-hello"]})
    assert build(service, "local", "src").status == "succeeded"
    out = tmp_path / "src.tar"
    done = subprocess.run(
        [*CLI, "export", "src", "--format", "bundle", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wheels, with sha256 checksums" in done.stdout
    return out


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bundle_holds_spec_lock_archives_and_wheels_with_checksums(service, bundle):
    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"] for f in manifest["files"]}
    assert listed == set(files) - {"manifest.json"}
    lock = json.loads(files["lock.json"])
    archives = {p for p in listed if p.startswith("conda/")}
    assert len(archives) == len(lock["conda"]) > 3
    assert any(p.startswith("wheels/envmgr_hello-") for p in listed)
    assert {"spec.json", "rattler-lock.yml"} <= listed


@needs_netns
def test_import_builds_exactly_that_lock_with_no_network(
    service, bundle, config_file, envmgr_settings, tmp_path
):
    offline = {
        **envmgr_settings,
        "channels": [f"http://127.0.0.1:{closed_port()}/"],
        "pip_find_links": [],
        "pkgs_dir": str(tmp_path / "empty-pkgs"),
    }
    config_file.write_text(json.dumps({"EnvManager": offline}))
    done = subprocess.run(
        ["unshare", "-n", *CLI, "import", str(bundle), "--name", "dst"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    source = service.packages.installed("local", "src", None)
    copied = service.packages.installed("local", "dst", None)
    key = [(p["kind"], p["name"], p["version"], p.get("build")) for p in source["packages"]]
    assert key == [(p["kind"], p["name"], p["version"], p.get("build")) for p in copied["packages"]]
    env = service.envs.get("local", "dst")
    out, reply = run_in_kernel(env["kernel"]["name"], "import pytool, envmgr_hello; print(6*7)")
    assert reply["status"] == "ok" and "42" in out


def nothing_created(service) -> None:
    assert service.envs.list("local") and [e["name"] for e in service.envs.list("local")] == ["src"]
    staging = Path(service.store("local").meta) / "staging"
    assert not list(staging.glob("bundle-*"))


def test_wrong_checksum_is_refused_naming_the_file(service, bundle, tmp_path):
    files = members(bundle)
    victim = sorted(p for p in files if p.startswith("conda/"))[0]
    files[victim] = files[victim][:-1] + bytes([files[victim][-1] ^ 1])
    bad = write_tar(tmp_path / "bad.tar", files)
    with pytest.raises(ValidationError) as info:
        import_bundle(service, bad, "local", "dst")
    assert f"wrong checksum: {victim}" in info.value.message
    assert info.value.field == "bundle"
    nothing_created(service)


def test_missing_archive_is_refused_naming_it(service, bundle, tmp_path):
    files = members(bundle)
    victim = sorted(p for p in files if p.startswith("conda/"))[-1]
    del files[victim]
    with pytest.raises(ValidationError) as info:
        import_bundle(service, write_tar(tmp_path / "bad.tar", files), "local", "dst")
    assert f"missing: {victim}" in info.value.message
    nothing_created(service)


def test_an_archive_absent_from_manifest_and_lock_is_refused(service, bundle, tmp_path):
    files = members(bundle)
    victim = sorted(p for p in files if p.startswith("conda/"))[0]
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = [f for f in manifest["files"] if f["path"] != victim]
    files["manifest.json"] = json.dumps(manifest).encode()
    del files[victim]
    with pytest.raises(ValidationError) as info:
        import_bundle(service, write_tar(tmp_path / "bad.tar", files), "local", "dst")
    assert "lacks archives of its lock" in info.value.message
    assert victim.removeprefix("conda/") in info.value.message
    nothing_created(service)


@pytest.mark.parametrize("evil", ["../evil", "conda/../../evil", "/etc/evil", "conda/.hidden"])
def test_paths_outside_the_bundle_are_refused(service, bundle, tmp_path, evil):
    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    manifest["files"].append({"path": evil, "sha256": "0" * 64, "size": 1})
    files["manifest.json"] = json.dumps(manifest).encode()
    files[evil] = b"x"
    with pytest.raises(ValidationError) as info:
        import_bundle(service, write_tar(tmp_path / "bad.tar", files), "local", "dst")
    assert "unexpected files" in info.value.message and evil in info.value.message
    nothing_created(service)
    assert not (tmp_path / "evil").exists()


def test_not_a_bundle(service, tmp_path):
    with pytest.raises(ValidationError, match="not a jupyter_env_manager bundle"):
        import_bundle(service, write_tar(tmp_path / "x.tar", {"manifest.json": b"{}"}))
    (tmp_path / "y.tar").write_bytes(b"not a tar")
    with pytest.raises(ValidationError, match="not a readable tar file"):
        import_bundle(service, tmp_path / "y.tar")


# -- REST ------------------------------------------------------------------------------------------


async def test_rest_export_and_upload_of_a_bundle(jp_fetch, jp_serverapp, tmp_path):
    service = jp_serverapp.web_app.settings["env_manager"]
    service.envs.create({"name": "src", "conda": ["pytool"], "pip": ["envmgr-hello"]})
    assert build(service, "local", "src").status == "succeeded"
    response = await jp_fetch(
        "env-manager", "environments", "local", "src", "export", params={"format": "bundle"}
    )
    assert response.headers["Content-Type"] == "application/x-tar"
    data = response.body
    assert tarfile.open(fileobj=io.BytesIO(data)).getmember("manifest.json").isfile()

    response = await jp_fetch(
        "env-manager", "bundles", method="POST", body=data, params={"name": "up"}
    )
    assert response.code == 202
    assert response.headers["Location"].endswith("/environments/local/up/builds/1")
    for _ in range(600):  # the build runs in the server's queue
        env = service.envs.get("local", "up")
        if env["status"] not in ("building", "queued", "saved"):
            break
        await asyncio.sleep(0.2)
    assert env["status"] == "ready", service.builds.read_log("local", "up", 1, 0)[0]


async def test_rest_upload_refusals_create_nothing(jp_fetch, jp_serverapp, tmp_path):
    service = jp_serverapp.web_app.settings["env_manager"]
    files = {"manifest.json": json.dumps({"format": "x", "files": []}).encode()}
    body = write_tar(tmp_path / "x.tar", files).read_bytes()
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("env-manager", "bundles", method="POST", body=body, params={"name": "n"})
    assert info.value.code == 400
    error = json.loads(info.value.response.body)
    assert error["field"] == "bundle" and "not a jupyter_env_manager bundle" in error["message"]

    service.settings.max_bundle_mb = 1
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "env-manager", "bundles", method="POST", body=b"\0" * (2 << 20), params={"name": "n"}
        )
    assert info.value.code == 413
    assert "at most 1 MiB" in json.loads(info.value.response.body)["message"]
    assert service.envs.list("local") == []
