"""The shared store is the team's: what anyone builds there, the others can use and change.

The policy (jupyter_env_manager/access.py) reads the store root's permissions. The first tests
check the modes a real build leaves under a ``2775`` root, whatever the builder's umask. The
last one is the multi-user store for real: three Unix users (two in the team's group, one not)
run ``jupyter envmgr`` on one shared directory, each with umask 077. It creates users, so it
runs only as root with ``ENVMGR_TEST_USERS=1`` (CI sets it; see .ci/run).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from helpers import build, umask

from jupyter_env_manager.core.access import Access
from jupyter_env_manager.core.errors import EnvManagerError
from jupyter_env_manager.core.store import Store


def walk(top: Path):
    """(path, lstat) of every directory and regular file under ``top``, ``top`` included."""
    yield top, os.lstat(top)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                yield path, st


@pytest.mark.parametrize(
    "root_mode, dirs, files, programs, locks, mask",
    [
        (0o2775, 0o2775, 0o644, 0o755, 0o664, 0o022),  # a team directory
        (0o2777, 0o2777, 0o644, 0o755, 0o664, 0o022),  # anyone may change it; files never o+w
        (0o2770, 0o2770, 0o640, 0o750, 0o660, 0o027),  # the team only
        (0o755, 0o755, 0o644, 0o755, 0o644, 0o022),  # an admin's store, read-only for others
        (0o700, 0o700, 0o600, 0o700, 0o600, 0o077),  # nobody else
    ],
)
def test_access_follows_the_root(tmp_path, root_mode, dirs, files, programs, locks, mask):
    root = tmp_path / "store"
    root.mkdir()
    os.chmod(root, root_mode)
    access = Access.of(root)
    assert (access.dir_mode, access.file_mode(), access.file_mode(executable=True)) == (
        dirs,
        files,
        programs,
    )
    assert (access.lock_mode, access.umask) == (locks, mask)
    assert Store(root, "shared").access == access
    assert Store(root, "local").access is None  # the local store keeps the user's umask


def other_group() -> grp.struct_group | None:
    """A group this process is not in by default, to see the root's group inherited."""
    if os.geteuid() != 0:
        return None
    for name in ("users", "staff", "nogroup"):
        with contextlib.suppress(KeyError):
            g = grp.getgrnam(name)
            if g.gr_gid != os.getegid():
                return g
    return None


def test_a_build_in_the_shared_store_is_the_teams_whatever_the_umask(service, envmgr_settings):
    shared = Path(envmgr_settings["shared_root"])
    shared.mkdir(parents=True)
    group = other_group()
    if group is not None:
        os.chown(shared, -1, group.gr_gid)
    os.chmod(shared, 0o2775)
    with umask(0o077):  # the builder's own umask would shut the team out
        service.envs.create(
            {"scope": "shared", "name": "team", "conda": ["alpha"], "pip": ["envmgr-hello==1.0"]}
        )
        assert build(service, "shared", "team").status == "succeeded"
        service.envs.create({"scope": "local", "name": "mine", "conda": ["alpha"]})
        assert build(service, "local", "mine").status == "succeeded"

    store = service.store("shared")
    checked = {"dirs": 0, "files": 0, "programs": 0, "locks": 0}
    for path, st in walk(shared):
        mode = stat.S_IMODE(st.st_mode)
        if group is not None:
            assert st.st_gid == group.gr_gid, path  # inherited through setgid directories
        if stat.S_ISDIR(st.st_mode):
            assert mode & 0o2075 == 0o2075, (path, oct(mode))  # g+rwx, o+rx, setgid
            checked["dirs"] += 1
        elif path.suffix == ".lock":
            assert mode & 0o064 == 0o064, (path, oct(mode))  # g+rw: NFS locks need write
            checked["locks"] += 1
        else:
            assert mode & 0o044 == 0o044, (path, oct(mode))
            checked["files"] += 1
            if mode & 0o100:
                assert mode & 0o011 == 0o011, (path, oct(mode))
                checked["programs"] += 1
    assert checked["locks"] == 2  # env.lock, build.lock
    assert min(checked.values()) > 0 and checked["files"] > 100, checked
    # The pip layer (uv) and the records rattler writes 0600 are among them.
    assert (store.prefix("team") / "bin" / "envmgr-hello").exists()
    assert any(p.name.startswith("alpha-") for p in (store.prefix("team") / "conda-meta").iterdir())

    # The local store is the user's alone: it keeps the umask.
    local = service.store("local")
    for path in (local.prefix("mine"), local.prefix("mine") / "conda-meta", local.env_dir("mine")):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_a_store_without_file_locks_says_so(service, envmgr_settings, monkeypatch):
    """NFS mounted without lockd answers flock with ENOLCK. There is no NFS here: flock is
    replaced by a stand-in that answers as such a mount does."""
    service.envs.create({"scope": "shared", "name": "nolock"})

    def nfs_without_lockd(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", nfs_without_lockd)
    with pytest.raises(EnvManagerError) as info:
        service.builds.prepare("shared", "nolock")
    assert info.value.message == (
        f"The shared store {envmgr_settings['shared_root']} does not support file locks, which "
        "keep two builds of one environment apart: on NFS, use NFSv4 or run lockd (NFSv3), or "
        "mount without 'nolock'"
    )
    assert service.store("shared").versions("nolock") == []


# -- three users, one shared directory ----------------------------------------------------------

TEAM = "envmgr-team"
ALICE, BOB, CAROL = "envmgr-alice", "envmgr-bob", "envmgr-carol"

needs_users = pytest.mark.skipif(
    os.environ.get("ENVMGR_TEST_USERS") != "1" or os.geteuid() != 0 or not shutil.which("useradd"),
    reason="creates Unix users: runs as root with ENVMGR_TEST_USERS=1 (CI sets it)",
)


def _remove_users() -> None:
    for user in (ALICE, BOB, CAROL):
        subprocess.run(["userdel", "-r", user], capture_output=True, check=False)
    subprocess.run(["groupdel", TEAM], capture_output=True, check=False)


@contextlib.contextmanager
def traversable(paths: list[Path]):
    """Let other users reach these paths (o+x on each parent that lacks it), then restore."""
    restore: dict[Path, int] = {}
    for path in paths:
        for parent in [path, *path.parents]:
            if not parent.is_dir() or parent in restore:
                continue
            mode = stat.S_IMODE(parent.stat().st_mode)
            if mode & 0o001 == 0:
                restore[parent] = mode
                os.chmod(parent, mode | 0o001)
    try:
        yield
    finally:
        for parent, mode in restore.items():
            os.chmod(parent, mode)


@pytest.fixture
def team(tmp_path, test_channel, wheelhouse):
    """Users alice and bob (group envmgr-team) and carol (not), a 2775 shared root, a config."""
    _remove_users()  # leftovers of an interrupted run
    commands = [["groupadd", TEAM]] + [
        ["useradd", "-m", *(["-G", TEAM] if user != CAROL else []), user]
        for user in (ALICE, BOB, CAROL)
    ]
    for argv in commands:
        made = subprocess.run(argv, capture_output=True, text=True, check=False)
        if made.returncode != 0:  # the machine cannot have users made: not what is tested
            _remove_users()
            pytest.skip(f"{' '.join(argv)} failed: {made.stderr.strip()}")
    work = Path(tempfile.mkdtemp(prefix="envmgr-team-"))
    os.chmod(work, 0o755)
    shared = work / "shared"
    shared.mkdir()
    os.chown(shared, -1, grp.getgrnam(TEAM).gr_gid)
    os.chmod(shared, 0o2775)
    wheels = shutil.copytree(wheelhouse, work / "wheelhouse")  # uv lists it: needs o+r
    os.chmod(wheels, 0o755)
    # The channel too: under pytest's base directory, which every pytest start makes 0700.
    channel = shutil.copytree(Path(test_channel.removeprefix("file://")), work / "channel")
    os.chmod(channel, 0o755)
    config = work / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "EnvManager": {
                    "channels": [channel.as_uri()],
                    "pip_find_links": [str(wheels)],
                    "pip_no_index": True,
                    "default_python": f"{sys.version_info.major}.{sys.version_info.minor}",
                }
            }
        )
    )
    os.chmod(config / "jupyter_server_config.json", 0o644)
    reach = [
        Path(sys.executable).resolve(),
        Path(sys.prefix),
        Path(__file__).resolve().parents[1],
    ]
    try:
        with traversable(reach):
            yield {"shared": shared, "config": config}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _remove_users()


def user_process(team: dict, user: str) -> dict:
    """subprocess arguments that run a program as ``user``: umask 077, their home, the config."""
    pw = pwd.getpwnam(user)
    env = {
        "HOME": pw.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "JUPYTER_CONFIG_DIR": str(team["config"]),
        "JUPYTER_ENV_MANAGER_SHARED_ROOT": str(team["shared"]),
    }
    return {
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        "extra_groups": os.getgrouplist(user, pw.pw_gid),
        "umask": 0o077,
        "env": env,
        "cwd": pw.pw_dir,
    }


def as_user(team: dict, user: str, *args: str, code: int = 0, program=None):
    """Run ``jupyter envmgr ARGS`` (or ``program``) as ``user`` and check its exit code."""
    argv = program or [sys.executable, "-m", "jupyter_env_manager.cli", *args]
    proc = subprocess.run(
        argv, **user_process(team, user), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == code, (user, args, proc.returncode, proc.stdout, proc.stderr)
    return proc


@contextlib.contextmanager
def server_of(team: dict, user: str):
    """A Jupyter server with the extension, run as ``user``; yields ``call(method, path,
    body=None) -> (status, json)`` for its REST API."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = uuid.uuid4().hex
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
        ],  # fmt: skip
        **user_process(team, user),
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                if call("GET", "api/status")[0] == 200:
                    break
            assert server.poll() is None, log.seek(0) or log.read().decode()
            time.sleep(0.2)
        yield call
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


KERNEL_SCRIPT = """
import sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=120)
out = []
hook = lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None
code = "import sys, envmgr_hello; print(envmgr_hello.__version__, sys.prefix)"
try:
    reply = kc.execute_interactive(code, timeout=60, output_hook=hook)
    print(reply["content"], file=sys.stderr)
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print("".join(out).strip())
"""


@needs_users
def test_a_team_shares_one_store(team):
    shared = team["shared"]
    show = ("show", "demo", "--shared", "--json")

    # Alice makes and builds an environment in the shared store.
    as_user(
        team, ALICE, "create", "demo", "--shared", "--conda", "alpha", "--pip", "envmgr-hello",
        "--build",
    )  # fmt: skip
    assert json.loads(as_user(team, ALICE, *show).stdout)["status"] == "ready"

    # Bob, in the team, sees it, reads its log, and gets a kernel that runs in it.
    listed = json.loads(as_user(team, BOB, "list", "--shared", "--json").stdout)["environments"]
    assert [(e["name"], e["status"], e["version"]) for e in listed] == [("demo", "ready", 1)]
    assert "build succeeded" in as_user(team, BOB, "log", "demo", "--shared").stdout
    as_user(team, BOB, "sync-kernels")
    kernel = as_user(team, BOB, program=[sys.executable, "-c", KERNEL_SCRIPT, "envmgr-shared-demo"])
    in_use = os.path.realpath(shared / "demo")  # the version's own directory
    assert kernel.stdout.strip().splitlines()[-1:] == [f"2.0 {in_use}"], kernel.stderr

    # Bob rebuilds Alice's environment (a new version in her directories, her prefix swapped).
    as_user(team, BOB, "build", "demo", "--shared")
    env = json.loads(as_user(team, ALICE, *show).stdout)
    assert env["version"] == 2 and env["status"] == "ready"
    assert [v["user"] for v in env["versions"]] == [ALICE, BOB]
    assert env["actions"]["build"] == {"allowed": True, "reason": None}

    # Carol, not in the team, may use it but not change it: one clear line, nothing created.
    assert json.loads(as_user(team, CAROL, *show).stdout)["version"] == 2
    refused_build = (
        f"You ({CAROL}) may not change environment 'demo' in the shared store: "
        f"{shared}/.envmgr/envs/demo is not writable for you (ask the store's owner: its root's "
        "group needs write permission, e.g. chmod 2775)"
    )
    refused_read = (
        f"You ({CAROL}) may not read the shared store {shared} "
        "(ask its owner to give your group read access)"
    )
    refused = as_user(team, CAROL, "build", "demo", "--shared", code=1)
    assert refused.stderr.strip() == f"jupyter envmgr: error: {refused_build}"
    refused = as_user(team, CAROL, "create", "hers", "--shared", code=1)
    assert "may not change the shared store" in refused.stderr
    assert sorted(p.name for p in (shared / ".envmgr" / "envs" / "demo" / "builds").iterdir()) == [
        "1",
        "2",
    ]
    assert not (shared / ".envmgr" / "envs" / "hers").exists()
    # Her server answers the same over REST: 403 with the same message, nothing created.
    with server_of(team, CAROL) as call:
        assert call("GET", "env-manager/info")[1]["shared_access"] == "read"
        status, body = call("GET", "env-manager/environments?scope=shared")
        assert (status, [e["name"] for e in body["environments"]]) == (200, ["demo"])
        status, body = call("POST", "env-manager/environments/shared/demo/builds", {})
        assert (status, body["message"]) == (403, refused_build)
        # The panel is told the same before she tries: the action is off, with that reason.
        actions = call("GET", "env-manager/environments/shared/demo")[1]["actions"]
        assert actions["build"] == {"allowed": False, "reason": refused_build}
        assert actions["delete"] == actions["build"]
        assert actions["copy_local"] == {"allowed": True, "reason": None}
        status, body = call("POST", "env-manager/environments", {"scope": "shared", "name": "x"})
        assert (status, body["message"]) == (
            403,
            f"You ({CAROL}) may not change the shared store: {shared}/.envmgr/envs is not "
            "writable for you (ask the store's owner: its root's group needs write permission, "
            "e.g. chmod 2775)",
        )
        os.chmod(shared, 0o2770)  # closed to outsiders: her local store still lists
        assert call("GET", "env-manager/info")[1]["shared_access"] == "none"
        status, body = call("GET", "env-manager/environments?scope=shared")
        assert (status, body["message"]) == (403, refused_read)
        assert call("GET", "env-manager/environments") == (200, {"environments": []})
        os.chmod(shared, 0o2775)
    assert sorted(os.listdir(shared / ".envmgr" / "envs")) == ["demo"]

    # ... and may make her own copy of it, in her local store.
    as_user(team, CAROL, "copy", "demo", "--shared", "--to", "local")
    mine = json.loads(as_user(team, CAROL, "show", "demo", "--json").stdout)
    assert (mine["status"], mine["prefix"]) == ("ready", f"/home/{CAROL}/.conda/envs/demo")
    access = {u: json.loads(as_user(team, u, "info", "--json").stdout) for u in (BOB, CAROL)}
    assert (access[BOB]["shared_access"], access[CAROL]["shared_access"]) == ("write", "read")

    as_user(team, CAROL, "sync-kernels")  # usable, if not changeable: it has her kernel
    kernelspec = Path(f"/home/{CAROL}/.local/share/jupyter/kernels/envmgr-shared-demo")
    assert json.loads((kernelspec / "kernel.json").read_text())["env"][
        "CONDA_PREFIX"
    ] == os.path.realpath(shared / "demo")  # the version's own directory

    # A store for the team only (2770): Carol lists her own environments, is told why the
    # shared ones are not listed, and loses their kernels.
    os.chmod(shared, 0o2770)
    assert json.loads(as_user(team, CAROL, "info", "--json").stdout)["shared_access"] == "none"
    listed = json.loads(as_user(team, CAROL, "list", "--json").stdout)["environments"]
    assert [(e["scope"], e["name"]) for e in listed] == [("local", "demo")]
    synced = json.loads(as_user(team, CAROL, "sync-kernels", "--json").stdout)
    assert synced == {
        "created": [],
        "updated": [],
        "removed": ["envmgr-shared-demo"],
        "failed": [],
    }
    refused = as_user(team, CAROL, "list", "--shared", code=1)
    assert refused.stderr.strip() == f"jupyter envmgr: error: {refused_read}"
    as_user(team, CAROL, "show", "demo", "--shared", code=1)
    os.chmod(shared, 0o2775)

    # Alice deletes what Bob built: nothing is left behind.
    as_user(team, ALICE, "delete", "demo", "--shared", "--yes")
    assert not (shared / "demo").exists()
    assert list((shared / ".envmgr" / "envs").iterdir()) == []
    assert list((shared / ".envmgr" / "trash").iterdir()) == []
