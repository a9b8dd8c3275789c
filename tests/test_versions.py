"""A running kernel keeps its version: per-version directories, the switch, liveness, retention.

Real builds on the test channel, real kernels through jupyter_client. ``keep_versions`` is 1
here, so only the version in use and what running kernels use are kept: every directory that
stays, stays because of a kernel.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import build, execute, run_in_kernel
from jupyter_client.manager import start_new_kernel
from test_shared_store import (
    ALICE,
    BOB,
    KERNEL_SCRIPT,
    as_user,
    needs_users,
    team,  # noqa: F401 (a fixture)
    user_process,
)
from traitlets.config import Config

from jupyter_env_manager.config import EnvManager
from jupyter_env_manager.core import liveness
from jupyter_env_manager.core.retention import version_dirs
from jupyter_env_manager.core.service import EnvService

READ = (
    "import os, sys\n"
    "print(open(os.path.join(os.environ['CONDA_PREFIX'], 'share/alpha/VERSION')).read().strip())\n"
    "import envmgr_hello; print(envmgr_hello.__version__)\n"
    "print(sys.prefix)\n"
)


def wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def svc(envmgr_settings, config_file):
    settings = {**envmgr_settings, "keep_versions": 1}
    return EnvService(EnvManager(config=Config({"EnvManager": settings})))


def make(svc, scope: str = "local", name: str = "mv"):
    svc.envs.create(
        {"scope": scope, "name": name, "conda": ["alpha=1.0"], "pip": ["envmgr-hello==1.0"]}
    )
    assert build(svc, scope, name).status == "succeeded"


def upgrade(svc, scope: str = "local", name: str = "mv"):
    svc.envs.update(scope, name, {"conda": ["alpha=2.0"], "pip": ["envmgr-hello==2.0"]})
    result = build(svc, scope, name)
    assert result.status == "succeeded", result.error
    return result


def test_a_running_kernel_keeps_its_version_and_a_restart_moves_it(svc):
    make(svc)
    store = svc.local
    v1_dir = store.active_prefix("mv")
    assert v1_dir.parent == store.versions_dir("mv") and store.prefix("mv").is_symlink()
    km, kc = start_new_kernel(kernel_name="envmgr-mv", startup_timeout=120)
    try:
        out, reply = execute(kc, "import sys; print(sys.prefix)")
        assert out.strip() == str(v1_dir), reply
        records = [r for r in liveness.scan(store.live_dir, 86400) if r.name == "mv"]
        assert [(r.version, r.prefix, r.pid) for r in records] == [
            (1, str(v1_dir), km.provisioner.process.pid)
        ]

        upgrade(svc)  # v2 is in use while the kernel runs
        v2_dir = store.active_prefix("mv")
        assert v2_dir != v1_dir and v1_dir.is_dir(), "v1 was removed under a live kernel"
        # Everything the kernel reads or imports later is v1's, never a mix with v2.
        out, reply = execute(kc, READ)
        assert out.split() == ["1.0", "1.0", str(v1_dir)], reply
        # A new kernel starts on v2.
        out, _ = run_in_kernel("envmgr-mv", READ)
        assert out.split() == ["2.0", "2.0", str(v2_dir)]
        # Retention keeps v1 for the kernel, whoever runs it (a server's periodic pass).
        done = svc.retention.collect()
        assert done.kept_for_kernels == {"local/mv": [v1_dir.name]} and v1_dir.is_dir()

        # A restart moves the kernel to the version in use then.
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        out, reply = execute(kc, READ)
        assert out.split() == ["2.0", "2.0", str(v2_dir)], reply
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    # No kernel uses v1 any more: the next pass removes its directory (its lock stays).
    done = svc.retention.collect()
    assert done.removed == {"local/mv": [v1_dir.name]}
    assert not v1_dir.exists() and v2_dir.is_dir()
    assert (svc.builds.dir("local", "mv", 1) / "lock.json").is_file()


def test_a_kernel_killed_without_cleanup_stops_keeping_its_version(svc):
    make(svc)
    store = svc.local
    v1_dir = store.active_prefix("mv")
    km, kc = start_new_kernel(kernel_name="envmgr-mv", startup_timeout=120)
    pid = km.provisioner.process.pid
    kc.stop_channels()
    upgrade(svc)
    assert v1_dir.is_dir()
    os.kill(pid, signal.SIGKILL)  # no shutdown: its record stays until someone notices
    km.provisioner.process.wait()
    done = svc.retention.collect()
    assert done.removed == {"local/mv": [v1_dir.name]} and not v1_dir.exists()
    assert not [r for r in liveness.scan(store.live_dir, 86400) if r.pid == pid]
    km.cleanup_resources()


def test_a_record_from_another_host_keeps_a_version_until_it_is_stale(svc):
    make(svc)
    store = svc.local
    v1_dir = store.active_prefix("mv")
    record = store.live_dir / "other-host.4242.1.json"
    data = {"host": "other-host.example", "pid": 4242, "start": 1, "scope": "local"}
    data.update({"name": "mv", "version": 1, "prefix": str(v1_dir), "user": "bob"})
    record.write_text(json.dumps(data))
    upgrade(svc)  # the build's own pass keeps v1: a kernel on another host uses it
    assert v1_dir.is_dir()
    log = svc.builds.read_log("local", "mv", 2)[0].decode()
    assert f"kept {v1_dir.name}: running kernels use them" in log
    stale = time.time() - svc.settings.kernel_stale_s - 60
    os.utime(record, (stale, stale))  # that host stopped refreshing it (it died)
    done = svc.retention.collect()
    assert done.removed == {"local/mv": [v1_dir.name]} and not record.exists()


def test_the_usual_path_is_what_conda_tools_see(svc):
    from rattler import PrefixRecord

    make(svc)
    store = svc.local
    usual, real = store.prefix("mv"), store.active_prefix("mv")
    assert os.readlink(usual) == f".envmgr/prefixes/mv/{real.name}"  # relative: any mount point
    listed = (Path.home() / ".conda" / "environments.txt").read_text().splitlines()
    assert str(usual) in listed and str(real) not in listed
    names = {
        PrefixRecord.from_path(p).name.normalized for p in (usual / "conda-meta").glob("*.json")
    }
    assert {"python", "alpha"} <= names
    run = subprocess.run(
        [usual / "bin" / "python", "-c", "import envmgr_hello; print(envmgr_hello.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "1.0"
    # the tools of a kernel find the environment by name from its version directory
    from jupyter_env_manager.cli.commands import env_of_prefix

    assert env_of_prefix(svc, real) == ("local", "mv") == env_of_prefix(svc, usual)
    # after a rebuild the usual path shows v2, and environments.txt still lists it once
    upgrade(svc)
    assert (usual / "share/alpha/VERSION").read_text().strip() == "2.0"
    listed = (Path.home() / ".conda" / "environments.txt").read_text().splitlines()
    assert listed.count(str(usual)) == 1


def test_delete_keeps_a_running_kernels_files_until_it_ends(svc):
    make(svc)
    store = svc.local
    v1_dir = store.active_prefix("mv")
    km, kc = start_new_kernel(kernel_name="envmgr-mv", startup_timeout=120)
    try:
        svc.envs.delete("local", "mv")
        assert not os.path.lexists(store.prefix("mv")) and v1_dir.is_dir()
        out, reply = execute(kc, READ)
        assert out.split() == ["1.0", "1.0", str(v1_dir)], reply
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    svc.retention.collect()
    assert not store.versions_dir("mv").exists()


def test_a_first_release_prefix_moves_under_prefixes_at_its_next_build(svc):
    make(svc)
    store = svc.local
    # The first release kept the prefix itself at <root>/<name>.
    v1_dir = store.active_prefix("mv")
    os.unlink(store.prefix("mv"))
    os.rename(v1_dir, store.prefix("mv"))
    assert not store.prefix("mv").is_symlink()
    upgrade(svc)
    assert store.prefix("mv").is_symlink()
    assert [(v, i) for v, i, _ in version_dirs(store, "mv")] == [
        (2, store.latest_build("mv").id[:8])
    ]
    out, _ = run_in_kernel("envmgr-mv", READ)
    assert out.split()[:2] == ["2.0", "2.0"]


def test_a_pass_never_takes_a_version_being_switched_in(svc):
    make(svc)
    store = svc.local
    upgrade(svc)
    v2_dir = store.active_prefix("mv")
    # A swap under way (its journal exists): nothing of the environment is removed meanwhile.
    journal = store.env_dir("mv") / "swap.json"
    journal.write_text(
        json.dumps({"version": 3, "build_id": "x" * 32, "final": "/x", "staging": "/y"})
    )
    fake = store.versions_dir("mv") / "v3-abcdef12"
    fake.mkdir()
    assert svc.retention.collect().removed == {}
    journal.unlink()
    # Without the journal, a directory no succeeded build owns is removed; the one in use stays.
    assert svc.retention.collect().removed == {"local/mv": ["v3-abcdef12"]}
    assert v2_dir.is_dir() and not fake.exists()


def test_the_launcher_records_and_the_watcher_removes(svc, tmp_path):
    make(svc)
    store = svc.local
    # The launcher as a kernelspec runs it, with a command that stands for the kernel.
    argv = [
        sys.executable, "-m", "jupyter_env_manager.core.launch",
        "--root", str(store.root), "--scope", "local", "--name", "mv",
        "--built-for", "/nowhere/old-version",
        "--", sys.executable, "-c",
        "import os, sys, time; print(os.environ['X'], sys.argv[1], flush=True); time.sleep(30)",
        "/nowhere/old-version/bin",
    ]  # fmt: skip
    env = {**os.environ, "X": "/nowhere/old-version/lib"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        real = str(store.active_prefix("mv"))
        # rewritten for the version in use now, in argv and in the environment
        assert line == [f"{real}/lib", f"{real}/bin"]
        records = wait_for(
            lambda: [r for r in liveness.scan(store.live_dir, 86400) if r.pid == proc.pid],
            "the record",
        )
        assert records[0].prefix == real and records[0].host == socket.gethostname()
        assert records[0].version == 1
    finally:
        proc.kill()
        proc.wait()
    # the watcher removes the record once the kernel ended
    wait_for(lambda: not list(store.live_dir.glob(f"*.{proc.pid}.*.json")), "the record to go")


# Modules the launcher must not import: every kernel start would wait for them (argparse and
# pathlib alone were ~40 ms of a ~530 ms start, bench row 7).
HEAVY = ("argparse", "pathlib", "dataclasses", "socket", "typing", "asyncio")


def test_the_launcher_imports_only_what_a_kernel_start_needs():
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['launch', '--']\n"
        "try:\n"
        "    runpy.run_module('jupyter_env_manager.core.launch', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if '.' not in m or m.startswith('jup'))))\n"
    )
    # -I: no user site, as a kernelspec's python would see it; runpy itself is not measured
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "jupyter_env_manager.core.liveness" in out  # the launcher ran (as __main__)
    assert not [m for m in HEAVY if m in out], out
    assert not [
        m
        for m in out
        if m.startswith("jupyter_env_manager.core.")
        and m.rsplit(".", 1)[1] not in ("launch", "liveness", "identity")
    ], out


@pytest.mark.parametrize(
    "options, says",
    [
        (["--root", "/r", "--scope", "local", "--name", "n"], "--built-for required"),
        (["--root", "/r", "--scope", "local", "--name", "n", "--built-for", "/d", "--bogus", "x"],
         "unknown option '--bogus'"),
        (["--root", "/r", "--scope", "local", "--name", "n", "--built-for", "/d", "--version", "x"],
         "--version 'x' is not a number"),
        (["--root"], "an option lacks its value"),
    ],
)  # fmt: skip
def test_the_launcher_names_a_bad_option(options, says):
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.core.launch", *options, "--", "true"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and says in proc.stderr, proc.stderr


# -- a teammate's kernel on the shared store -----------------------------------------------------

LONG_KERNEL = """
import sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=120)
def run(code):
    out = []
    hook = lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None
    kc.execute_interactive(code, timeout=60, output_hook=hook)
    print(" ".join("".join(out).split()), flush=True)
try:
    run("import sys; print(sys.prefix)")
    sys.stdin.readline()  # the test rebuilds meanwhile
    run(sys.argv[2])
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"""


@needs_users
def test_a_teammates_kernel_keeps_the_shared_version_it_started_on(team):  # noqa: F811
    config = team["config"] / "jupyter_server_config.json"
    settings = json.loads(config.read_text())
    settings["EnvManager"]["keep_versions"] = 1
    config.write_text(json.dumps(settings))
    as_user(
        team, ALICE, "create", "mv", "--shared", "--conda", "alpha=1.0", "--pip",
        "envmgr-hello==1.0", "--build",
    )  # fmt: skip
    shared = team["shared"]
    v1_dir = Path(os.path.realpath(shared / "mv"))
    as_user(team, BOB, "sync-kernels")
    bob = subprocess.Popen(
        [sys.executable, "-c", LONG_KERNEL, "envmgr-shared-mv", READ],
        **user_process(team, BOB),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert bob.stdout.readline().strip() == str(v1_dir)
        # Bob's record is in the store, where Alice's server sees it.
        records = [liveness.read(p) for p in (shared / ".envmgr" / "live").glob("*.json")]
        assert [(r.user, r.prefix) for r in records if r] == [(BOB, str(v1_dir))]
        # Alice rebuilds with new versions: v1's directory stays for Bob's kernel.
        as_user(team, ALICE, "install", "alpha=2.0", "--env", "mv", "--shared")
        v2_dir = Path(os.path.realpath(shared / "mv"))
        assert v2_dir != v1_dir and v1_dir.is_dir()
        log = as_user(team, ALICE, "log", "mv", "--shared").stdout
        assert f"kept {v1_dir.name}: running kernels use them" in log
        bob.stdin.write("go\n")
        bob.stdin.flush()
        assert bob.stdout.readline().split() == ["1.0", "1.0", str(v1_dir)]
    finally:
        bob.stdin.close()
        bob.wait(timeout=120)
    # Bob's kernel ended: the next build (or server pass) removes v1's directory.
    as_user(team, ALICE, "install", "envmgr-hello==2.0", "--pip", "--env", "mv", "--shared")
    assert not v1_dir.exists()
    out = as_user(team, BOB, program=[sys.executable, "-c", KERNEL_SCRIPT, "envmgr-shared-mv"])
    assert out.stdout.split()[-2:] == ["2.0", str(Path(os.path.realpath(shared / "mv")))]
