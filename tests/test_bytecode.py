"""Byte-code a build compiled is linked into the next prefixes of the same packages (bytecode.py):
real builds of noarch python packages that ship no .pyc, as conda-forge's do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import HOST_PACKAGES_CACHE
from helpers import build
from traitlets.config import Config

from jupyter_env_manager.config import EnvManager
from jupyter_env_manager.core.bytecode import BYTECODE
from jupyter_env_manager.core.service import EnvService
from jupyter_env_manager.testing.channel import PREFIX_PLACEHOLDER, PackageDef, build_channel

PLACED = PackageDef(
    "placed",
    "1.0",
    noarch="python",
    depends=["python"],
    files={"site-packages/placed/__init__.py": f'PREFIX = "{PREFIX_PLACEHOLDER}"\n'},
)


@pytest.fixture(scope="module")
def placed_channel(tmp_path_factory) -> str:
    """A channel of one package whose module has the prefix written into it at install."""
    path = tmp_path_factory.mktemp("placed-channel")
    return build_channel(path, extra=[PLACED], defaults=False, host_packages=())


@pytest.fixture
def envmgr_settings(envmgr_settings, placed_channel):
    # verify imports these: pytool and placed are compiled by each build's check
    return {
        **envmgr_settings,
        "channels": [*envmgr_settings["channels"], placed_channel],
        "kernel_packages": ["ipykernel", "pytool", "placed"],
        "pkgs_dir": str(Path(envmgr_settings["local_root"]).parent / "pkgs"),  # this test's
    }


def compiled(prefix: Path, module: str) -> Path:
    (pyc,) = prefix.glob(f"lib/python*/site-packages/{module}/__pycache__/__init__.*.pyc")
    return pyc


def made(service, name: str) -> Path:
    service.envs.create({"scope": "local", "name": name})
    b = build(service, "local", name)
    assert b.status == "succeeded", b.error
    return service.local.active_prefix(name)


def test_the_next_environment_links_the_byte_code_a_build_compiled(service):
    first = made(service, "first")
    log = service.builds.read_log("local", "first", 1)[0].decode()
    assert "byte-code: 1 .pyc files compiled here kept" in log
    pyc = compiled(first, "pytool")
    assert pyc.stat().st_nlink == 2  # the prefix's and the one kept beside the package cache
    kept = Path(service.settings.pkgs_dir) / BYTECODE
    assert [p.samefile(pyc) for p in kept.rglob("*.pyc")] == [True]

    second = made(service, "second")
    log = service.builds.read_log("local", "second", 1)[0].decode()
    assert "byte-code: 1 .pyc files linked from the package cache's" in log
    assert compiled(second, "pytool").samefile(pyc)
    # Python took it as it is: an import in the new prefix neither compiles nor replaces it
    python = second / "bin" / "python"
    subprocess.run([python, "-I", "-c", "import pytool"], check=True)
    assert compiled(second, "pytool").samefile(pyc)
    assert pyc.stat().st_nlink == 3


def test_byte_code_of_a_file_written_for_its_prefix_is_never_shared(service):
    # names of one length: the two rewritten files have one size, as Python's check sees them
    first, second = made(service, "one"), made(service, "two")
    assert not compiled(first, "placed").samefile(compiled(second, "placed"))
    kept = Path(service.settings.pkgs_dir) / BYTECODE
    assert [p.parent.name for p in kept.rglob("*.pyc")] == ["__pycache__"]  # pytool's alone
    assert list(kept.rglob("placed")) == []
    for prefix in (first, second):
        out = subprocess.run(
            [prefix / "bin" / "python", "-I", "-c", "import placed; print(placed.PREFIX)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert out == str(prefix.resolve())


def test_byte_code_that_does_not_match_its_source_is_compiled_again(service):
    """A kept .pyc whose source changed (its cache entry extracted again): Python's own
    check refuses it and the build compiles and keeps a new one."""
    first = made(service, "first")
    pyc = compiled(first, "pytool")
    source = pyc.parent.parent / "__init__.py"
    stamp = source.stat().st_mtime
    os.utime(source, (stamp - 3600, stamp - 3600))  # the same inode: the cache's file too
    second = made(service, "second")
    fresh = compiled(second, "pytool")
    assert not fresh.samefile(pyc)
    kept = next((Path(service.settings.pkgs_dir) / BYTECODE).rglob("pytool/__pycache__/*.pyc"))
    assert kept.samefile(fresh)  # the one that matches replaced it for later builds


def test_cleaning_the_package_cache_removes_the_byte_code_of_what_it_removes(service):
    made(service, "first")
    kept = Path(service.settings.pkgs_dir) / BYTECODE
    (entry,) = [p.name for p in kept.iterdir() if p.name.startswith("pytool-")]
    listed = service.disk.clean(dry_run=True)
    assert f"{BYTECODE}/{entry}" not in listed["removed"]  # in use
    service.envs.delete("local", "first")
    done = service.disk.clean()
    assert f"{BYTECODE}/{entry}" in done["removed"] and entry in done["removed"]
    assert not (kept / entry).exists()


@pytest.fixture(scope="module")
def no_bytecode_channel(tmp_path_factory) -> str:
    """python and ipykernel's closure with no .pyc at all, as conda-forge's noarch packages."""
    path = tmp_path_factory.mktemp("no-bytecode-channel")
    return build_channel(path, bytecode=False, cache_dir=HOST_PACKAGES_CACHE)


def test_a_build_compiles_what_its_kernel_imports_once_per_package_cache(
    envmgr_settings, config_file, no_bytecode_channel
):
    settings = {**envmgr_settings, "channels": [no_bytecode_channel], "kernel_packages": [
        "ipykernel"]}  # fmt: skip
    service = EnvService(EnvManager(config=Config({"EnvManager": settings})))
    first = made(service, "first")
    log = service.builds.read_log("local", "first", 1)[0].decode()
    assert "checking that python imports ipykernel.kernelapp, ipykernel.ipkernel" in log
    site = next(first.glob("lib/python*/site-packages"))
    # what a kernel start imports beyond `import ipykernel`, compiled by the build
    shell = next((site / "IPython/core/__pycache__").glob("interactiveshell.*.pyc"))
    assert next((site / "ipykernel/__pycache__").glob("kernelapp.*.pyc"))
    second = made(service, "second")
    log = service.builds.read_log("local", "second", 1)[0].decode()
    linked = int(log.split("byte-code: ", 1)[1].split(" ", 1)[0])
    compiled = len(list(site.rglob("*.pyc")))
    assert linked == compiled > 150, (linked, compiled)  # ipykernel's closure, compiled once
    assert "compiled here kept" not in log
    other = next(second.glob("lib/python*/site-packages"))
    assert next((other / "IPython/core/__pycache__").glob("interactiveshell.*.pyc")).samefile(shell)


def test_a_cache_where_byte_code_cannot_be_kept_does_not_fail_the_build(service):
    """The byte-code cache is an optimisation: a build that cannot keep its .pyc files (here
    the cache's directory is a file) succeeds, and its log says why."""
    Path(service.settings.pkgs_dir).mkdir(parents=True, exist_ok=True)
    (Path(service.settings.pkgs_dir) / BYTECODE).write_text("not a directory")
    prefix = made(service, "first")
    log = service.builds.read_log("local", "first", 1)[0].decode()
    assert "warning: byte-code not kept: " in log
    assert compiled(prefix, "pytool").stat().st_nlink == 1  # compiled in the prefix all the same
    second = made(service, "second")  # and the next build neither links nor fails
    assert "byte-code:" not in service.builds.read_log("local", "second", 1)[0].decode()
    assert not compiled(second, "pytool").samefile(compiled(prefix, "pytool"))
