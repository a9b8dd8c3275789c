"""A shared store on another filesystem links from a package cache on its own filesystem.

Hard links cannot cross filesystems: with only the user's package cache (in the home), every
file of every package of a build into a shared store on NFS would be copied. The shared store's
``.envmgr/pkgs/<user>/`` (see jupyter_env_manager/core/pkgcache.py) fixes it; when it cannot be
used, the build says so in its log and ``info`` says so for an admin.

The second filesystem is /dev/shm (a tmpfs on Linux): nothing is mounted, so these tests need
no lock. Skipped where /dev/shm is not another filesystem than the tests' temporary directory.
The last test is a team's (real Unix users, ENVMGR_TEST_USERS=1, as in test_shared_store.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import umask
from test_shared_store import (  # noqa: F401
    ALICE,
    BOB,
    TEAM,
    as_user,
    needs_users,
    team,
)

from jupyter_env_manager.core.bytecode import BYTECODE
from jupyter_env_manager.core.pkgcache import user_dir_name
from jupyter_env_manager.core.runner import run_foreground

SECOND_FS = Path("/dev/shm")


@pytest.fixture
def second_fs(tmp_path):
    if not SECOND_FS.is_dir() or os.stat(SECOND_FS).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip(f"{SECOND_FS} is not a filesystem other than {tmp_path}'s")
    base = Path(tempfile.mkdtemp(prefix="envmgr-test-", dir=SECOND_FS))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def envmgr_settings(envmgr_settings, request):
    """The shared store on the second filesystem, for tests that ask for ``second_fs``."""
    if "second_fs" not in request.fixturenames:
        return envmgr_settings
    base = request.getfixturevalue("second_fs")
    return {**envmgr_settings, "shared_root": str(base / "shared-envs")}


def shared_root(settings, mode: int = 0o2775) -> Path:
    root = Path(settings["shared_root"])
    root.mkdir(parents=True)
    os.chmod(root, mode)
    return root


def copy_to_shared(service, name: str = "team"):
    service.envs.create({"scope": "local", "name": "demo", "conda": ["alpha"], "pip": [
        "envmgr-hello==1.0"]})  # fmt: skip
    first = service.builds.prepare("local", "demo")
    assert run_foreground(service, "local", "demo", first).status == "succeeded"
    _env, b = service.sharing.copy("local", "demo", "shared", name)
    result = run_foreground(service, "shared", name, b)
    assert result.status == "succeeded", result.error
    log = service.builds.read_log("shared", name, result.version)[0].decode()
    return service.shared.active_prefix(name), log


def inodes(top: Path) -> set[tuple[int, int]]:
    out = set()
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                out.add((st.st_dev, st.st_ino))
    return out


def test_a_copy_onto_another_filesystem_hard_links_from_the_stores_package_cache(
    service, envmgr_settings, second_fs
):
    root = shared_root(envmgr_settings)
    service.settings.kernel_packages = ["ipykernel", "pytool"]  # verify compiles pytool's .py
    with umask(0o077):  # the builder's own umask would shut the team out of the cache
        prefix, log = copy_to_shared(service)
    mine = root / ".envmgr" / "pkgs" / user_dir_name()
    cache = mine / "conda"
    # the byte-code the copy compiled is kept in this cache too (bytecode.py), for the team
    (kept,) = (cache / BYTECODE).glob("pytool-*/lib/python*/site-packages/pytool/__pycache__/*")
    assert kept.samefile(next(prefix.glob("lib/python*/site-packages/pytool/__pycache__/*")))
    assert f"package cache: {cache} (on the shared store's filesystem" in log
    assert "falls back to copying" not in log
    # The environment's files are the cache's: same inodes, linked more than once.
    version = (prefix / "share" / "alpha" / "VERSION").stat()
    assert version.st_nlink > 1
    cached = inodes(cache)
    assert (version.st_dev, version.st_ino) in cached
    linked = inodes(prefix) & cached
    assert len(linked) > 10, len(linked)
    # The pip layer too: uv hard-links from its cache on the store's filesystem.
    hello = next((prefix / "lib").glob("python*/site-packages/envmgr_hello/__init__.py")).stat()
    assert hello.st_nlink > 1 and (hello.st_dev, hello.st_ino) in inodes(mine / "uv")
    # Permissions: the team reads the cache, only its owner writes it; no one removes another
    # user's directory (sticky); uv's cache (lock files 0666 by uv's choice) is the owner's.
    top = stat.S_IMODE(os.stat(mine.parent).st_mode)
    assert top == 0o3775, oct(top)
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(mine / "uv").st_mode) & 0o077 == 0
    files = 0
    for dirpath, dirs, names in os.walk(cache):
        for name in dirs + names:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(st.st_mode):
                continue
            assert st.st_mode & 0o022 == 0, (dirpath, name, oct(st.st_mode))
            assert st.st_mode & 0o044 == 0o044, (dirpath, name, oct(st.st_mode))
            files += 1
    assert files > 20
    # An admin sees where this user's shared builds link from.
    info = service.info()["shared_package_cache"]
    assert info["path"] == str(cache) and info["links"] is True, info
    # The disk-use cleanup prunes this user's shared cache too, once nothing links to it.
    service.envs.delete("shared", "team")
    service.envs.delete("local", "demo")
    dry = service.disk.clean(dry_run=True)
    assert dry["shared"]["pkgs_dir"] == str(cache)
    assert any(entry.startswith("alpha-") for entry in dry["shared"]["removed"]), dry
    assert any(entry.startswith(f"{BYTECODE}/pytool-") for entry in dry["shared"]["removed"])
    assert any((cache / e).exists() for e in dry["shared"]["removed"])
    service.disk.clean()
    assert not any((cache / e).exists() for e in dry["shared"]["removed"])


def test_a_store_that_cannot_use_its_package_cache_says_it_copies(
    service, envmgr_settings, second_fs
):
    root = shared_root(envmgr_settings)
    taken = root / ".envmgr" / "pkgs" / user_dir_name()
    taken.mkdir(parents=True)
    os.chown(taken, 65534, -1)  # someone else's directory under this user's name
    prefix, log = copy_to_shared(service)
    warning = (
        "warning: the shared store falls back to copying every package file from the local "
        f"package cache {envmgr_settings['pkgs_dir']}: {taken} is not a directory of yours"
    )
    assert warning in log
    assert (prefix / "share" / "alpha" / "VERSION").stat().st_nlink == 1  # a copy
    assert list(taken.iterdir()) == []
    info = service.info()["shared_package_cache"]
    assert info["links"] is False and f"{taken} is not a directory of yours" in info["note"]


def test_a_shared_store_on_the_caches_filesystem_links_from_the_local_cache(
    service, envmgr_settings
):
    root = shared_root(envmgr_settings)
    prefix, log = copy_to_shared(service)
    local = envmgr_settings["pkgs_dir"]
    assert f"package cache: {local} (on the shared store's filesystem" in log
    assert not (root / ".envmgr" / "pkgs").exists()  # no second download
    assert (prefix / "share" / "alpha" / "VERSION").stat().st_nlink > 1
    assert service.info()["shared_package_cache"]["path"] == local


def test_offline_packages_only_in_the_local_cache_are_linked_from_it(
    service, envmgr_settings, second_fs, tmp_path
):
    from types import SimpleNamespace

    from jupyter_env_manager.core.buildjob import BuildJob
    from jupyter_env_manager.core.engine import Builder

    root = shared_root(envmgr_settings)
    service.shared.ensure()
    record = SimpleNamespace(
        name=SimpleNamespace(normalized="remote"), version="1.0", build="0",
        url="https://conda.example.org/main/noarch/remote-1.0-0.conda",
    )  # fmt: skip
    local = Path(envmgr_settings["pkgs_dir"])
    (local / "remote-1.0-0" / "info").mkdir(parents=True, exist_ok=True)
    (local / "remote-1.0-0" / "info" / "index.json").write_text("{}")
    lines: list[str] = []
    job = BuildJob(
        scope="shared", root=str(root), name="x", version=1, kind="build", spec={"name": "x"},
        channels=[], pkgs_dir=str(local), kernel_packages=[], default_python="3", offline=True,
    )  # fmt: skip
    builder = Builder(job, SimpleNamespace(write=lines.append))
    builder.check_offline([record])  # in the local cache: not missing
    assert builder.package_cache([record]).conda == local
    assert lines and lines[0].startswith("warning: offline, and 1 packages are in the local")
    assert "falls back to copying every package file" in lines[0]
    # Online, the same build links from the store's own cache.
    job.offline = False
    online = Builder(job, SimpleNamespace(write=lines.append)).package_cache([record])
    assert online.conda == root / ".envmgr" / "pkgs" / user_dir_name() / "conda"


@needs_users
def test_teammates_each_link_from_their_own_cache(team, second_fs):  # noqa: F811
    """Alice and Bob (umask 077) build the same packages into one store on another filesystem.

    With fs.protected_hardlinks = 1 Bob could not hard-link Alice's cached files (he neither
    owns them nor may write them): each links from a cache of their own, and neither may
    change the other's."""
    import grp

    shared = second_fs / "shared"
    shared.mkdir()
    os.chmod(second_fs, 0o755)
    os.chown(shared, -1, grp.getgrnam(TEAM).gr_gid)
    os.chmod(shared, 0o2775)
    on_it = {**team, "shared": shared}
    for user, name in ((ALICE, "alices"), (BOB, "bobs")):
        create = ("create", name, "--shared", "--conda", "alpha", "--pip", "envmgr-hello")
        as_user(on_it, user, *create, "--build")
        log = (shared / ".envmgr" / "envs" / name / "builds" / "1" / "log.txt").read_text()
        cache = shared / ".envmgr" / "pkgs" / user / "conda"
        assert f"package cache: {cache} (on the shared store's filesystem" in log, log
        version = (shared / name / "share" / "alpha" / "VERSION").stat()
        assert version.st_nlink > 1 and (version.st_dev, version.st_ino) in inodes(cache)
        st = os.stat(cache.parent)
        assert st.st_uid == pwd.getpwnam(user).pw_uid and stat.S_IMODE(st.st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(shared / ".envmgr" / "pkgs").st_mode) == 0o3775
    # Bob may read Alice's cache (the root lets the group read), not change it.
    probe = [sys.executable, "-c", (
        "import os, sys; d = sys.argv[1]; "
        "print(os.access(d, os.R_OK | os.X_OK), os.access(d, os.W_OK))"
    ), str(shared / ".envmgr" / "pkgs" / ALICE / "conda")]  # fmt: skip
    assert as_user(on_it, BOB, program=probe).stdout.split() == ["True", "False"]
