"""Build lifecycle under faults: locks, lost builds, kills around the commit, deletes, cancels.

One regression test per defect of issue 10 (2-5), each with real workers and real builds from
the test channel. Workers are stopped at a named point with the test hook
``JUPYTER_ENV_MANAGER_TEST_PAUSE_AT`` (the worker sends itself SIGSTOP there) or from outside
with SIGSTOP, then killed or resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import build, run_in_kernel
from test_api import call, get_json, wait_build

from jupyter_env_manager.core import layout as layout_module
from jupyter_env_manager.core import store as store_module
from jupyter_env_manager.core.errors import Conflict, NotFound
from jupyter_env_manager.core.runner import BuildQueue, worker_argv
from jupyter_env_manager.core.store import MARKER, PAUSE_ENV, read_json


def wait_for(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stopped(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data.rsplit(b")", 1)[1].split()[0] in (b"T", b"t")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_worker_left():
    """A failing test must not leave a stopped worker behind."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_worker(service, name: str, build, pause: str | None = None, **popen) -> subprocess.Popen:
    env = dict(os.environ)
    if pause:
        env[PAUSE_ENV] = pause
    build_dir = service.builds.dir("local", name, build.version)
    popen.setdefault("stdout", subprocess.DEVNULL)
    proc = subprocess.Popen(
        worker_argv(build_dir, build.id), env=env, start_new_session=True, **popen
    )
    _started.append(proc)
    return proc


@pytest.fixture
def ready(service):
    service.envs.create({"scope": "local", "name": "demo", "conda": ["alpha"]})
    assert build(service, "local", "demo").status == "succeeded"
    service.envs.update("local", "demo", {"conda": ["alpha=2.0", "gamma"]})
    return service


# -- defect 2: a lock taken twice, unbounded lock waits -----------------------------------------


def test_queuing_over_a_dead_build_does_not_hang(service, config_file):
    """The latest build is recorded running but its process died (a killed CLI build): queuing
    the next one used to take the env lock twice and hang forever, and with it the CLI."""
    service.envs.create({"scope": "local", "name": "dead", "conda": ["alpha"]})
    store = service.local
    queued = service.builds.prepare("local", "dead")
    record = store.read_build("dead", queued.version)
    record.status, record.owner = "running", {"host": os.uname().nodename, "pid": dead_pid()}
    store.write_build("dead", record)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", "build", "dead", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    builds = {b["version"]: b for b in service.builds.list("local", "dead")}
    assert builds[1]["status"] == "interrupted"
    assert builds[1]["error"] == "The build was interrupted (its worker process ended)"
    assert builds[2]["status"] == "succeeded"


def test_a_lock_wait_is_bounded_and_says_why(service, monkeypatch):
    service.envs.create({"scope": "local", "name": "held", "conda": ["alpha"]})
    lock = service.local.env_dir("held") / "env.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(layout_module, "LOCK_WAIT_S", 1.0)  # where env_lock reads it
        outcome: list[BaseException | str] = []

        def edit():
            try:
                service.envs.update("local", "held", {"conda": ["beta"]})
                outcome.append("done")
            except BaseException as err:
                outcome.append(err)

        thread = threading.Thread(target=edit, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(30)
        assert outcome, "update_env waited for the lock without bound"
        assert isinstance(outcome[0], Conflict)
        assert outcome[0].message == (
            "Environment 'held' in the local store is locked by another process "
            "(waited 1 s for its lock): try again"
        )
        assert 1.0 <= time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    service.envs.update("local", "held", {"conda": ["beta"]})  # free again: it goes through


def refused_in_a_thread(monkeypatch) -> threading.Event:
    """Set once a thread other than the test's is refused an exclusive lock (it now waits or
    retries): the moment to change what it waits for."""
    refused = threading.Event()
    real_flock = layout_module.StoreLayout._flock

    def flock(self, fd, operation):
        try:
            real_flock(self, fd, operation)
        except OSError:
            if (
                operation & fcntl.LOCK_EX
                and threading.current_thread() is not threading.main_thread()
            ):
                refused.set()
            raise

    monkeypatch.setattr(layout_module.StoreLayout, "_flock", flock)
    return refused


@pytest.mark.parametrize("recreated", [False, True])
def test_a_build_that_waited_for_a_delete_is_a_404(service, monkeypatch, recreated):
    """A build waits for the environment's lock while a delete holds it; the delete renames the
    metadata (the lock file with it) into the trash. The build used to go on under the lock
    of the trashed file: mkdir of its version failed (a 500 in the three-server test), or,
    with the name made again meanwhile, it numbered a build of the new environment without
    holding that one's lock."""
    service.envs.create({"scope": "local", "name": "racy", "conda": ["alpha"]})
    store = service.local
    waiting = refused_in_a_thread(monkeypatch)
    outcome: list = []

    def start():
        try:
            outcome.append(service.builds.start("local", "racy"))
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=start, daemon=True)
    with store.env_lock("racy"):
        thread.start()
        assert waiting.wait(60), "the build never waited for the lock"
        store.delete_env("racy")  # re-entrant: as a delete holding the lock does
        if recreated:
            service.envs.create({"scope": "local", "name": "racy", "conda": ["beta"]})
    thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], NotFound), outcome
    assert outcome[0].status == 404
    if recreated:
        assert store.versions("racy") == []  # nothing numbered in the new environment
    else:
        assert not store.exists("racy") and not store.env_dir("racy").exists()


def test_a_build_lock_taken_as_its_environment_is_deleted_is_a_404(service, monkeypatch, tmp_path):
    """A delete that renames the metadata away between the open of the build lock and its
    flock: the lock is the trashed file's, so a worker (or a delete) gets a 404, not a lock."""
    service.envs.create({"scope": "local", "name": "moved", "conda": ["alpha"]})
    store = service.local
    real = layout_module.StoreLayout._flock_unless_built

    def deleted_meanwhile(self, fd, operation):
        os.rename(self.env_dir("moved"), tmp_path / "trashed-meta")
        return real(self, fd, operation)

    monkeypatch.setattr(layout_module.StoreLayout, "_flock_unless_built", deleted_meanwhile)
    with pytest.raises(NotFound):
        store.try_build_lock("moved")


def lock_holder(path: Path, how: str) -> subprocess.Popen:
    """A process holding ``path``'s flock (``how``: "LOCK_SH" or "LOCK_EX") until its stdin
    has a line."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            f"fcntl.flock(fd, fcntl.{how}); print('held', flush=True); sys.stdin.readline()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_look_at_the_build_lock_does_not_fail_a_starting_build(service, monkeypatch):
    """Listing a queued build asks whether its build lock is held by holding it shared for a
    moment. A worker that tried to take it then (a spare worker starts its build within
    milliseconds of the request, while the client polls) failed its build, "Another build is
    running"; it now tries again while the lock is only looked at, and still gives up at once
    when a build holds it."""
    service.envs.create({"scope": "local", "name": "peeked", "conda": ["alpha"]})
    store = service.local
    lock = store.build_lock_path("peeked")
    monkeypatch.setattr(layout_module, "PROBE_WAIT_S", 60.0)  # the release below is no race
    refused = refused_in_a_thread(monkeypatch)
    holder = lock_holder(lock, "LOCK_SH")
    taken: list = []
    thread = threading.Thread(target=lambda: taken.append(store.try_build_lock("peeked")))
    thread.start()
    assert refused.wait(60), "the exclusive lock was never refused"
    holder.communicate("\n", timeout=60)  # the look is over
    thread.join(60)
    assert taken and taken[0] is not None, "the build lock was not taken after the look"
    os.close(taken[0])

    holder = lock_holder(lock, "LOCK_EX")  # a build runs: no waiting for it
    try:
        started = time.monotonic()
        assert store.try_build_lock("peeked") is None
        assert time.monotonic() - started < 30
        with pytest.raises(Conflict):
            store.delete_env("peeked")
    finally:
        holder.communicate("\n", timeout=60)


# -- defect 3: a recreated environment's build taken for the old one -----------------------------


@pytest.fixture
def jp_server_config(envmgr_settings):
    from traitlets.config import Config

    settings = dict(envmgr_settings, max_concurrent_builds=1, watch_interval_s=0.2)
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_env_manager": True},
                "allow_unauthenticated_access": False,
            },
            "EnvManager": settings,
        }
    )


async def test_a_recreated_environment_is_built(jp_fetch, jp_serverapp):
    """Cancel a queued build, delete the environment, recreate it, build: its v1 runs."""
    service = jp_serverapp.web_app.settings["env_manager"]
    for name in ("busy", "again"):
        await call(jp_fetch, "POST", "environments", body={"name": name, "conda": ["alpha"]})
    await call(jp_fetch, "POST", "environments", "local", "busy", "builds")
    # Hold the one build slot: stop busy's worker once it runs.
    deadline = time.monotonic() + 60
    while True:
        busy = service.local.read_build("busy", 1)
        if busy.status == "running" and busy.owner.get("pid"):
            break
        assert time.monotonic() < deadline, busy
        await asyncio.sleep(0.05)
    worker = busy.owner["pid"]
    os.kill(worker, signal.SIGSTOP)
    try:
        r = await call(jp_fetch, "POST", "environments", "local", "again", "builds")
        assert json.loads(r.body)["build"]["status"] == "queued"
        r = await call(jp_fetch, "POST", "environments", "local", "again", "builds", "1", "cancel")
        assert json.loads(r.body)["status"] == "cancelled"
        r = await call(jp_fetch, "DELETE", "environments", "local", "again")
        assert r.code == 204
        await call(jp_fetch, "POST", "environments", body={"name": "again", "conda": ["alpha"]})
        r = await call(jp_fetch, "POST", "environments", "local", "again", "builds")
        assert json.loads(r.body)["build"]["version"] == 1
    finally:
        os.kill(worker, signal.SIGCONT)
    assert (await wait_build(jp_fetch, "local", "busy", 1))["status"] == "succeeded"
    again = await wait_build(jp_fetch, "local", "again", 1, timeout=120)
    assert again["status"] == "succeeded", again
    env = await get_json(jp_fetch, "environments", "local", "again")
    assert (env["status"], env["version"]) == ("ready", 1)


def test_a_queued_build_of_a_dead_server_is_ended_with_its_reason(service):
    """Queued by a process that is gone (same host, pid no longer that process): interrupted,
    saying so; a reused pid (another process, another start time) does not keep it queued."""
    service.envs.create({"scope": "local", "name": "orphan", "conda": ["alpha"]})
    queued = service.builds.prepare("local", "orphan")
    store = service.local
    record = store.read_build("orphan", queued.version)
    record.owner = dict(record.owner, pid=os.getpid(), start=1)  # our pid, not our start time
    store.write_build("orphan", record)
    ended = service.builds.get("local", "orphan", queued.version)
    assert ended.status == "interrupted"
    assert ended.error == (
        f"The build was interrupted (the process that queued it, pid {os.getpid()} on "
        f"{os.uname().nodename}, ended before it started)"
    )
    assert build(service, "local", "orphan").status == "succeeded"


# -- defect 4: the version in use and the build's status decided together ------------------------


@pytest.mark.parametrize(
    ("point", "first"),
    [
        ("swap", "build"),
        ("swap", "environment"),
        ("swap", "list"),
        ("after-swap", "build"),
        ("phase:kernel", "build"),
        ("before-record", "environment"),
    ],
)
def test_a_kill_after_the_swap_leaves_a_succeeded_build_in_use(ready, point, first):
    """No restart: the first read (``first``) reaps the build, and finishes what the kill cut
    short. An environment's view read before its reap used to show the old version (the
    kill loop's server trial: 'version 1' over a build that succeeded as version 2)."""
    service = ready
    store = service.local
    b = service.builds.prepare("local", "demo")
    worker = start_worker(service, "demo", b, pause=point)
    wait_for(lambda: stopped(worker.pid) or worker.poll() is not None, what=f"pause at {point}")
    assert worker.poll() is None, "the worker did not stop at the pause point"
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    if first == "environment":
        seen = service.envs.get("local", "demo")
    elif first == "list":
        (seen,) = [v for v in service.listing.views("local") if v["name"] == "demo"]
    if first != "build":
        assert (seen["version"], seen["status"]) == (2, "ready")
        assert seen["latest_build"]["status"] == "succeeded"
    after = service.builds.get("local", "demo", b.version)
    assert (after.status, after.error) == ("succeeded", None)
    env = service.envs.get("local", "demo")
    assert (env["version"], env["status"]) == (2, "ready")
    assert read_json(store.prefix("demo") / MARKER)["version"] == 2
    assert not (store.env_dir("demo") / "swap.json").exists()
    assert list(store.trash.iterdir()) == []  # the old prefix went with the reap, not at restart
    assert list((store.meta / "staging").iterdir()) == []
    service.kernels.sync()  # what a server start (or the watcher) does for the kernelspec
    out, _ = run_in_kernel("envmgr-demo", "import sys; print(sys.prefix)")
    assert out.strip() == str(store.active_prefix("demo"))
    assert store.prefix("demo").is_symlink()


@pytest.mark.parametrize("point", ["phase:verify", "before-swap"])
def test_a_kill_before_the_swap_keeps_the_previous_version(ready, point):
    service = ready
    store = service.local
    b = service.builds.prepare("local", "demo")
    worker = start_worker(service, "demo", b, pause=point)
    wait_for(lambda: stopped(worker.pid) or worker.poll() is not None, what=f"pause at {point}")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    after = service.builds.get("local", "demo", b.version)
    assert after.status == "interrupted"
    env = service.envs.get("local", "demo")
    assert (env["version"], env["status"]) == (1, "failed")
    assert read_json(store.prefix("demo") / MARKER)["version"] == 1
    assert list((store.meta / "staging").iterdir()) == []


def test_a_worker_outlives_its_parent(ready):
    """The server (or CLI) that started a worker dies: its stdout pipe breaks. The build goes
    on and records its own end (it used to end "failed: Broken pipe")."""
    service = ready
    b = service.builds.prepare("local", "demo")
    worker = start_worker(service, "demo", b, stdout=subprocess.PIPE)
    assert json.loads(worker.stdout.readline())["status"] == "running"
    worker.stdout.close()  # the parent is gone
    assert worker.wait(180) == 0
    done = service.local.read_build("demo", b.version)
    assert (done.status, done.error) == ("succeeded", None)
    assert service.envs.get("local", "demo")["version"] == 2


# -- defect 5: deletes and cancels that reach across processes and hosts -------------------------


def test_delete_is_refused_while_a_worker_runs(ready):
    """A delete while a worker runs, even one whose record says it ended (as a cancel from
    another server used to leave it): 409, and the environment never comes back unmanaged."""
    service = ready
    store = service.local
    b = service.builds.prepare("local", "demo")
    worker = start_worker(service, "demo", b, pause="before-swap")
    wait_for(lambda: stopped(worker.pid), what="the worker to pause")
    record = store.read_build("demo", b.version)
    record.status, record.error = "cancelled", "cancelled from another server"
    store.write_build("demo", record)
    with pytest.raises(Conflict) as info:
        service.envs.delete("local", "demo")
    assert info.value.message == (
        "A build of 'demo' is running (its worker holds the build lock): cancel it or wait for "
        "it to end"
    )
    os.killpg(worker.pid, signal.SIGCONT)
    worker.wait(120)
    names = [(e["name"], e["managed"]) for e in service.envs.list("local")]
    assert names == [("demo", True)]
    assert service.envs.get("local", "demo")["version"] == 1
    service.envs.delete("local", "demo")  # no build now: the delete goes through
    assert service.envs.list("local") == []
    assert not store.prefix("demo").exists()


def test_a_cancel_from_another_host_is_a_request_its_worker_honours(ready):
    """The build's owner is on another host: its pid means nothing here (here it is some other
    process). The cancel signals nobody and marks nothing: the worker ends itself cancelled."""
    service = ready
    store = service.local
    decoy = subprocess.Popen(["sleep", "300"])
    b = service.builds.prepare("local", "demo")
    worker = start_worker(service, "demo", b, pause="before-swap")
    try:
        wait_for(lambda: stopped(worker.pid), what="the worker to pause")
        record = store.read_build("demo", b.version)
        record.owner = {"host": "elsewhere.example", "pid": decoy.pid}
        store.write_build("demo", record)

        async def cancel_while_it_resumes():
            queue = BuildQueue(service, 1)
            cancel = asyncio.create_task(queue.cancel("local", "demo", b.version))
            await asyncio.sleep(0.5)
            # Nothing is recorded while the worker still runs.
            assert store.read_build("demo", b.version).status == "running"
            os.killpg(worker.pid, signal.SIGCONT)
            await cancel

        asyncio.run(cancel_while_it_resumes())
        assert worker.wait(60) == 1
        assert decoy.poll() is None, "the cancel killed an unrelated process"
        request = json.loads((store.build_dir("demo", b.version) / "cancel.json").read_text())
        assert request["by"] == store_module.current_user()
        done = store.read_build("demo", b.version)
        assert done.status == "cancelled" and done.error.startswith("The build was cancelled by")
        assert service.envs.get("local", "demo")["version"] == 1
    finally:
        decoy.kill()
        decoy.wait()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def test_a_deleted_latest_version_number_is_not_given_again(service):
    """Issue 11: version numbers are never reused (a high-water mark, not the last directory)."""
    service.envs.create({"scope": "local", "name": "hw", "conda": ["alpha"]})
    store = service.local
    first = store.allocate_build("hw", store_module.Build(version=0, status="failed"))
    second = store.allocate_build("hw", store_module.Build(version=0, status="failed"))
    assert (first.version, second.version) == (1, 2) and first.id != second.id
    store.remove_tree(store.build_dir("hw", 2))
    assert store.allocate_build("hw", store_module.Build(version=0)).version == 3
