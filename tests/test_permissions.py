"""PERMISSIONS: after real builds, every path has the mode the README promises.

Real builds run as ``jupyter envmgr`` subprocesses with the builder's umask (077 and 022), into
shared roots ``2775``, ``2777`` and ``2770`` and into the builder's own local store, with the
layout of a real user: HOME holds ``~/.conda/envs``, ``~/.conda/environments.txt`` and the
kernelspecs. Then every path is walked:

- nothing in the home is writable by the group or others, and what we write there (kernelspecs,
  ``environments.txt``, ``kernels.json``) has exactly the user's umask's modes;
- the shared store is exactly as the README's table says (parsed from README.md);
- no file anywhere is writable by others (directories only below a ``2777`` root).

The last test is the attack of issue 10 for real: another Unix user tries to rewrite the
kernelspec of someone who built in a ``2777`` store. It creates users: root with
``ENVMGR_TEST_USERS=1`` only (CI sets it).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_shared_store import (  # noqa: F401
    ALICE,
    CAROL,
    as_user,
    needs_users,
    other_group,
    team,
    walk,
)

from jupyter_env_manager.core.access import Access
from jupyter_env_manager.core.conda_registry import register_conda_env
from jupyter_env_manager.core.errors import Forbidden
from jupyter_env_manager.core.store import Build, current_user

README = Path(__file__).resolve().parents[1] / "README.md"
ROOTS = (0o2775, 0o2777, 0o2770)
MASKS = (0o077, 0o022)
# uv (0.13) forces the lock files of its cache to 0666 whatever the umask (astral-sh/uv#12665,
# #16769): not a file we write, and not reachable by others under umask 077 (~/.cache/uv 0700).
UV_CACHE = Path(".cache/uv")
TABLE_ROW = re.compile(r"^\| `(\d{4})` \| `(\d{4})` \| `(\d{4})` \| `(\d{4})` \|", re.M)


def readme_modes() -> dict[int, tuple[int, int, int]]:
    """root mode -> (directories, metadata files, lock files), from the README's table."""
    rows = TABLE_ROW.findall(README.read_text())
    return {int(r, 8): (int(d, 8), int(f, 8), int(lk, 8)) for r, d, f, lk in rows}


def uv_cache_lock(path: Path) -> bool:
    """A lock file of uv's cache in a home (see UV_CACHE)."""
    return path.name.endswith(".lock") and f"/{UV_CACHE}/" in str(path)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


class Builder:
    """``jupyter envmgr`` run as a user would: own HOME and umask, the test's configuration."""

    def __init__(self, base: Path, mask: int, settings: dict):
        self.mask = mask
        self.home = base / f"home-{mask:03o}"
        self.home.mkdir(mode=0o755)
        config = base / f"config-{mask:03o}"
        config.mkdir()
        keep = ("channels", "pkgs_dir", "pip_find_links", "pip_no_index", "default_python")
        (config / "jupyter_server_config.json").write_text(
            json.dumps({"EnvManager": {k: settings[k] for k in keep}})
        )
        self.env = {
            "HOME": str(self.home),
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "USER": pwd.getpwuid(os.getuid()).pw_name,
            "JUPYTER_CONFIG_DIR": str(config),
        }
        if os.environ.get("PYTHONPATH"):  # a source tree (see conftest): keep it importable
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def __call__(self, *args: str, shared: Path | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if shared is not None:
            env["JUPYTER_ENV_MANAGER_SHARED_ROOT"] = str(shared)
        proc = subprocess.run(
            [sys.executable, "-m", "jupyter_env_manager.cli", *args],
            env=env,
            umask=self.mask,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, (args, self.mask, proc.stdout, proc.stderr)
        return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory, test_channel, wheelhouse, pkgs_cache):
    """Real builds: per umask, one local environment and one per shared root."""
    started = time.monotonic()
    base = tmp_path_factory.mktemp("perm")
    os.chmod(base, 0o755)
    settings = {
        "channels": [test_channel],
        "pkgs_dir": str(pkgs_cache),
        "pip_find_links": [str(wheelhouse)],
        "pip_no_index": True,
        "default_python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    group = other_group()
    roots = {}
    for root_mode in ROOTS:
        root = base / f"shared-{root_mode:o}"
        root.mkdir()
        if group is not None:
            os.chown(root, -1, group.gr_gid)
        os.chmod(root, root_mode)
        roots[root_mode] = root
    builders = {mask: Builder(base, mask, settings) for mask in MASKS}
    builds = 0
    for mask, run in builders.items():
        run("create", "mine", "--conda", "alpha", "--pip", "envmgr-hello==1.0", "--build")
        run("deactivate", "mine")
        run("activate", "mine")  # writes kernels.json (the kernel intents) too
        builds += 1
        for root in roots.values():
            name = f"team-{mask:03o}"
            create = ("create", name, "--shared", "--conda", "alpha", "--pip", "envmgr-hello")
            run(*create, "--build", shared=root)
            builds += 1
    print(
        f"\nPERMISSIONS: {builds} real builds (umasks {', '.join(f'{m:03o}' for m in MASKS)}; "
        f"roots {', '.join(f'{r:o}' for r in ROOTS)}) in {time.monotonic() - started:.1f} s"
    )
    return {"base": base, "roots": roots, "builders": builders, "group": group}


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: f"umask{m:03o}")
def test_the_home_is_the_users_alone(built, mask):
    run = built["builders"][mask]
    home = run.home
    checked, uv_locks = 0, 0
    for path, st in walk(home):
        if uv_cache_lock(path):
            uv_locks += 1  # uv makes its cache's lock files 0666 on purpose (see UV_CACHE)
            continue
        assert st.st_mode & 0o022 == 0, (path, oct(st.st_mode))  # issue 10, defect 1
        # uv ran with the user's umask, also in shared builds (a file hard-linked into a shared
        # prefix shares its inode, so its modes, with the store: only the others are checked)
        if f"/{UV_CACHE}/" in str(path) and (st.st_nlink == 1 or stat.S_ISDIR(st.st_mode)):
            assert st.st_mode & mask & 0o044 == 0, (path, oct(st.st_mode))
        checked += 1
    want_dir, want_file = 0o755 & ~mask, 0o644 & ~mask
    kernels = home / ".local" / "share" / "jupyter" / "kernels"
    ours = sorted(p.name for p in kernels.iterdir())
    assert ours == ["envmgr-mine", f"envmgr-shared-team-{mask:03o}"], ours
    exact = [kernels, home / ".conda" / "environments.txt", home / ".conda" / "envs" / ".envmgr"]
    exact += [home / ".conda" / "envs" / ".envmgr" / "kernels.json"]
    for kdir in kernels.iterdir():
        exact += [kdir, kdir / "kernel.json", kdir / "pylib"]
    for path in exact:
        want = want_dir if path.is_dir() else want_file
        if path.name == ".envmgr":  # the local store: made by the server's process, umask
            want = 0o777 & ~mask
        assert mode_of(path) == want, (path, oct(mode_of(path)), oct(want))
    registered = (home / ".conda" / "environments.txt").read_text().splitlines()
    assert len(registered) == 1 + len(ROOTS), registered
    print(f"PERMISSIONS: umask {mask:03o}: {checked} paths in the home checked", end="")
    print(f" (and {uv_locks} lock files of uv's cache, 0666 by uv's choice)")


def test_every_row_of_the_readme_table_is_the_policy(tmp_path):
    rows = readme_modes()
    assert set(ROOTS) < set(rows) and len(rows) >= 4, rows
    for root_mode, modes in rows.items():
        root = tmp_path / f"root-{root_mode:o}"
        root.mkdir()
        os.chmod(root, root_mode)
        access = Access.of(root)
        assert (access.dir_mode, access.file_mode(), access.lock_mode) == modes, oct(root_mode)
        assert access.umask & 0o022 == 0o022  # files a build makes are never writable by others


@pytest.mark.parametrize("root_mode", ROOTS, ids=lambda m: f"root{m:o}")
def test_the_shared_store_is_as_the_readme_says(built, root_mode):
    dirs, metadata, locks = readme_modes()[root_mode]
    root = built["roots"][root_mode]
    access = Access.of(root)
    assert (access.dir_mode, access.file_mode(), access.lock_mode) == (dirs, metadata, locks)
    read, run = access.bits & 0o044, access.bits & 0o011
    counts = {"dirs": 0, "metadata": 0, "locks": 0, "prefix files": 0, "programs": 0}
    for path, st in walk(root):
        mode = stat.S_IMODE(st.st_mode)
        if built["group"] is not None:
            assert st.st_gid == built["group"].gr_gid, path  # inherited through setgid
        if stat.S_ISDIR(st.st_mode):
            sticky = path == root / ".envmgr" / "live"  # kernels' records: no one removes another's
            assert mode == dirs | (stat.S_ISVTX if sticky else 0), (path, oct(mode))
            counts["dirs"] += 1
        elif path.suffix == ".lock":
            assert mode == locks, (path, oct(mode))
            counts["locks"] += 1
        elif ".envmgr" in path.relative_to(root).parts and not _in_a_prefix(root, path):
            assert mode == metadata, (path, oct(mode))  # issue 10: no 0664 metadata
            counts["metadata"] += 1
        else:  # in a prefix: at least the root's read bits, never a write bit but the owner's
            assert mode & 0o022 == 0, (path, oct(mode))
            assert mode & read == read, (path, oct(mode))
            counts["prefix files"] += 1
            if mode & 0o100:
                assert mode & run == run, (path, oct(mode))
                counts["programs"] += 1
    assert counts["locks"] == 2 * len(MASKS)  # env.lock and build.lock of each environment
    assert min(counts.values()) > 0 and counts["prefix files"] > 100, counts
    print(f"PERMISSIONS: root {root_mode:o}: {counts}")


def _in_a_prefix(root: Path, path: Path) -> bool:
    """Files of a version's own directory (``.envmgr/prefixes/<name>/v<N>-<id>/...``)."""
    parts = path.relative_to(root).parts
    return parts[:2] == (".envmgr", "prefixes") and len(parts) > 4


def test_nothing_is_world_writable(built):
    """Files never; directories only below the root that says so (2777)."""
    base, paths = built["base"], 0
    open_root = built["roots"][0o2777]
    for path, st in walk(base):
        paths += 1
        if st.st_mode & 0o002 == 0 or uv_cache_lock(path):
            continue
        assert stat.S_ISDIR(st.st_mode), (path, oct(st.st_mode))
        assert path == open_root or open_root in path.parents, (path, oct(st.st_mode))
    print(f"PERMISSIONS: {paths} paths checked for world write")


# -- the attack of issue 10, defect 1, with real users ---------------------------------------


@needs_users
def test_another_user_cannot_rewrite_a_kernelspec(team):  # noqa: F811
    """Alice builds in a 2777 store; Carol (another user) tries to change Alice's kernel."""
    shared = team["shared"]
    os.chmod(shared, 0o2777)
    as_user(team, ALICE, "create", "demo", "--shared", "--conda", "alpha", "--build")
    home = Path(pwd.getpwnam(ALICE).pw_dir)
    kernel = home / ".local/share/jupyter/kernels/envmgr-shared-demo"
    assert json.loads((kernel / "kernel.json").read_text())["env"][
        "CONDA_PREFIX"
    ] == os.path.realpath(shared / "demo")  # the version's own directory
    attack = (
        "import os, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        if os.path.isdir(path):\n"
        "            open(os.path.join(path, 'kernel.json.new'), 'w').close()\n"
        "        else:\n"
        "            open(path, 'r+').close()\n"
        "        print('WROTE', path)\n"
        "    except OSError as err:\n"
        "        print(err.errno, path)\n"
    )
    targets = [
        kernel / "kernel.json",
        kernel,
        kernel.parent,
        kernel / "pylib",
        home / ".conda" / "environments.txt",
        shared / ".envmgr" / "envs" / "demo" / "env.json",
        shared / "demo" / "share" / "alpha" / "VERSION",
    ]
    os.chmod(home, 0o755)  # let her reach the files (a home readable by others)
    proc = as_user(team, CAROL, program=[sys.executable, "-c", attack, *map(str, targets)])
    assert proc.stdout.splitlines() == [f"{errno.EACCES} {t}" for t in targets], proc.stdout
    # Carol may still build in a store whose root lets anyone write: her lock is read-only.
    as_user(team, CAROL, "build", "demo", "--shared")
    lock = shared / ".envmgr" / "envs" / "demo" / "build.lock"
    assert mode_of(lock) == 0o664, oct(mode_of(lock))
    shutil.rmtree(home / ".local", ignore_errors=True)


# -- lock files on NFS ------------------------------------------------------------------------


def test_on_nfs_an_outsider_sees_builds_but_cannot_lock(service, envmgr_settings, monkeypatch):
    """Lock files are never writable by others: someone outside the group opens them read-only.
    NFS answers an exclusive ``flock`` on such a descriptor with EBADF. There is no NFS here:
    flock is replaced by a stand-in that answers as NFS does for a read-only descriptor."""
    service.envs.create({"scope": "shared", "name": "nfs"})
    store = service.store("shared")
    real_flock = fcntl.flock
    holder = os.open(store.build_lock_path("nfs"), os.O_RDWR | os.O_CREAT, 0o600)
    real_flock(holder, fcntl.LOCK_EX)  # a running build (another process's lock, as flock sees)
    try:

        def nfs_read_only(fd, operation):
            if operation & fcntl.LOCK_EX:
                raise OSError(errno.EBADF, "Bad file descriptor")
            return real_flock(fd, operation)

        running = store.allocate_build("nfs", Build(version=0, status="running"))
        monkeypatch.setattr(fcntl, "flock", nfs_read_only)
        # Whether a build runs is tested with a shared lock: it works read-only, also on NFS.
        assert store.build_is_alive("nfs", running)
        with pytest.raises(Forbidden) as info:
            service.builds.prepare("shared", "nfs")
        assert info.value.message == (
            f"You ({current_user()}) may not lock environments in the shared store "
            f"{envmgr_settings['shared_root']}: its lock files are writable by its group only "
            "(ask the store's owner to add you to the group)"
        )
    finally:
        os.close(holder)
    assert store.versions("nfs") == [running.version]
    assert not store.build_is_alive("nfs", running)  # the holder is gone: interrupted


def test_home_files_an_older_version_opened_are_tightened(tmp_path):
    """environments.txt and kernelspec directories left 0666/0777 by the bug are repaired."""
    listed = Path.home() / ".conda" / "environments.txt"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text("/somewhere/else\n")
    os.chmod(listed, 0o666)
    register_conda_env(tmp_path / "env")
    assert mode_of(listed) == 0o644
    assert listed.read_text().splitlines() == ["/somewhere/else", str(tmp_path / "env")]
