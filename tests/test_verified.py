"""Verify once per lock (core/verified.py): a build of a lock verified before, whose files are
those the verify loaded, unchanged, does not start its python to import them again; any change
to one of them (a hard-linked file edited in the package cache, the source of a file rewritten
for its prefix) has the imports run again, and fail if they fail. Real builds and kernels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import build, run_in_kernel, umask
from test_bytecode import envmgr_settings, placed_channel  # noqa: F401 (fixtures)

from jupyter_env_manager.core.verified import VERIFIED

CHECKING = "checking that python imports ipykernel.kernelapp, ipykernel.ipkernel, pytool, placed"
SKIPPED = "are those a build of this lock checked, unchanged"


def made(service, name: str, status: str = "succeeded") -> str:
    service.envs.create({"scope": "local", "name": name})
    b = build(service, "local", name)
    assert b.status == status, b.error
    return service.builds.read_log("local", name, 1)[0].decode()


def certificate(service) -> dict:
    (path,) = (Path(service.settings.pkgs_dir) / VERIFIED).glob("*.json")
    return json.loads(path.read_text())


def cache_file(service, package: str, rel: str) -> Path:
    (entry,) = [p for p in Path(service.settings.pkgs_dir).glob(f"{package}-*") if p.is_dir()]
    return entry / rel


def test_a_lock_verified_before_is_not_imported_again(service):
    with umask(0o002):  # a group-writable umask: the certificate is still the user's alone
        log = made(service, "first")
    assert CHECKING in log and SKIPPED not in log
    (path,) = (Path(service.settings.pkgs_dir) / VERIFIED).glob("*.json")
    assert path.stat().st_mode & 0o022 == 0 and path.parent.stat().st_mode & 0o022 == 0
    files = certificate(service)["files"]
    kinds = {how[0] for rel, how in files.items()}
    assert kinds == {"link", "copy"}, files  # placed's module is written for its prefix
    (placed,) = [rel for rel in files if rel.endswith("placed/__init__.py")]
    assert files[placed][0] == "copy" and files[placed][1].startswith(service.settings.pkgs_dir)

    log = made(service, "second")  # the same spec, so the same lock
    assert CHECKING not in log and SKIPPED in log
    assert "compiling 1 modules python loads" in log  # placed's: its byte-code is its own
    prefix = service.local.active_prefix("second")
    assert list(prefix.glob("lib/python*/site-packages/placed/__pycache__/*.pyc"))
    service.kernels.sync()
    out, _ = run_in_kernel("envmgr-second", "import placed, sys; print(placed.PREFIX, sys.prefix)")
    assert out.split() == [str(prefix), str(prefix)]


@pytest.mark.parametrize(
    ("package", "rel", "kind"),
    [("pytool", "site-packages/pytool/__init__.py", "link"),
     ("placed", "site-packages/placed/__init__.py", "copy")],
)  # fmt: skip
def test_a_file_changed_in_the_package_cache_is_verified_again(service, package, rel, kind):
    made(service, "first")
    source = cache_file(service, package, rel)
    assert source.exists()
    # An edit in place (through any hard link of it: every prefix's file is the cache's inode)
    with open(source, "a") as f:
        f.write("\nraise ImportError('broken in the package cache')\n")
    log = made(service, "second", status="failed")
    assert CHECKING in log and SKIPPED not in log
    (failed,) = service.builds.list("local", "second")
    assert "broken in the package cache" in failed["error"], failed
    assert service.local.active_version("second") is None  # nothing put in use
    assert kind in {how[0] for how in certificate(service)["files"].values()}


def test_verify_once_false_imports_at_every_build(service, config_file):
    from traitlets.config import Config

    from jupyter_env_manager.config import EnvManager
    from jupyter_env_manager.core.service import EnvService

    made(service, "first")
    settings = json.loads(config_file.read_text())["EnvManager"]  # this module's
    every = EnvService(
        EnvManager(config=Config({"EnvManager": {**settings, "verify_once": False}}))
    )
    log = made(every, "second")
    assert CHECKING in log and SKIPPED not in log


def test_a_certificate_naming_a_path_outside_the_prefix_is_not_used(service):
    made(service, "first")
    (path,) = (Path(service.settings.pkgs_dir) / VERIFIED).glob("*.json")
    data = json.loads(path.read_text())
    data["files"]["../../../etc/hostname"] = ["link", 0, 0, 0, 0]
    path.write_text(json.dumps(data))
    assert CHECKING in made(service, "second")


def test_cleaning_the_package_cache_removes_the_certificates_of_what_it_removes(service):
    made(service, "first")
    (path,) = (Path(service.settings.pkgs_dir) / VERIFIED).glob("*.json")
    assert f"{VERIFIED}/{path.name}" not in service.disk.clean(dry_run=True)["removed"]
    service.envs.delete("local", "first")
    done = service.disk.clean()
    assert f"{VERIFIED}/{path.name}" in done["removed"]
    assert not path.exists() and not os.listdir(path.parent)


def test_a_loaded_file_not_made_from_the_package_cache_makes_no_certificate(service, tmp_path):
    from jupyter_env_manager.core.verified import keep

    made(service, "first")
    prefix = service.local.active_prefix("first")
    proved = certificate(service)
    report = tmp_path / "report.json"
    stray = prefix / "lib" / "stray.py"  # written by something else: one link, no source
    stray.write_text("X = 1\n")
    loaded = [str(prefix / rel) for rel in proved["files"]]
    for extra, kept in (([str(stray)], False), ([], True)):
        report.write_text(json.dumps({"tag": proved["tag"], "loaded": loaded + extra}))
        note = keep(tmp_path / "cert.json", prefix, report, [])
        assert (tmp_path / "cert.json").exists() == kept, note
        if not kept:
            assert note == "verify: python loaded a file not made from the package cache"
    assert (
        note is None
        and json.loads((tmp_path / "cert.json").read_text())["files"] == proved["files"]
    )
    note = keep(tmp_path / "other.json", prefix, tmp_path / "no-report.json", [])
    assert note.startswith("warning: what verify checked was not kept") and "no-report" in note
    assert not (tmp_path / "other.json").exists()
