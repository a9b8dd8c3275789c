"""The build queue's spare worker (core/spare.py): started with the first build, imports done,
handed the next build; replaced when it died or the server's environment changed; stopped with
the server; cancellable like any worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest
from killloop import alive, stopped

from jupyter_env_manager.core import runner, spare
from jupyter_env_manager.core.records import PAUSE_ENV
from jupyter_env_manager.core.runner import BuildQueue
from jupyter_env_manager.core.spare import SPARE_FLAG


@pytest.fixture
def demo(service):
    service.envs.create({"scope": "local", "name": "demo", "conda": ["alpha"]})
    return service


def submit(queue: BuildQueue, service, name: str = "demo"):
    build = service.builds.prepare("local", name)
    queue.submit("local", name, build)
    return build


async def finished(queue: BuildQueue, service, build, name: str = "demo"):
    """The build's record once the queue is done with it."""
    await queue.wait(build.id)
    return service.builds.get("local", name, build.version)


async def spare_pid(queue: BuildQueue) -> int:
    """The pid of the queue's spare, once it is started."""
    for _ in range(500):
        if queue.spare.proc is not None:
            return queue.spare.proc.pid
        await asyncio.sleep(0.01)
    raise AssertionError("no spare worker was started")


def with_queue(service, scenario) -> None:
    """Run ``await scenario(queue)`` with a build queue of one slot, shut down after it."""

    async def main():
        queue = BuildQueue(service, 1)
        try:
            await scenario(queue)
        finally:
            await queue.shutdown()

    asyncio.run(main())


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_the_second_build_runs_in_the_spare_started_after_the_first(demo):
    service = demo

    async def scenario(queue):
        assert queue.spare.proc is None  # none before a build: a server that never builds
        first = await finished(queue, service, submit(queue, service))
        assert first.status == "succeeded"
        pid = await spare_pid(queue)
        assert SPARE_FLAG in cmdline(pid) and alive(pid)
        second = await finished(queue, service, submit(queue, service))
        assert second.status == "succeeded", second.error
        assert second.owner["pid"] == pid  # the process that existed before the submit
        assert first.owner["pid"] != pid
        log = service.builds.read_log("local", "demo", second.version, 0)[0].decode()
        assert f"pid {pid}" in log and "build succeeded" in log  # its log went to log.txt
        assert await spare_pid(queue) != pid  # and a new spare waits for the next build

    with_queue(service, scenario)


def test_a_dead_spare_is_replaced_by_a_worker_of_its_own(demo):
    service = demo

    async def scenario(queue):
        await finished(queue, service, submit(queue, service))
        # Dead before the build comes: not used.
        pid = await spare_pid(queue)
        os.killpg(pid, signal.SIGKILL)
        await queue.spare.proc.wait()
        done = await finished(queue, service, submit(queue, service))
        assert done.status == "succeeded", done.error
        assert done.owner["pid"] != pid
        # Dead after it was handed the build, before it took it (stopped, then killed):
        # the build, still queued, goes to a worker of its own.
        pid = await spare_pid(queue)
        os.kill(pid, signal.SIGSTOP)
        build = submit(queue, service)
        for _ in range(500):
            job = queue._jobs.get(build.id)
            if job is not None and job.proc is not None:
                break
            await asyncio.sleep(0.01)
        assert job.proc.pid == pid
        os.killpg(pid, signal.SIGKILL)
        done = await finished(queue, service, build)
        assert done.status == "succeeded", done.error
        assert done.owner["pid"] not in (pid, None)

    with_queue(service, scenario)


def test_a_spare_started_before_the_environment_changed_is_not_used(demo, monkeypatch):
    service = demo

    async def scenario(queue):
        await finished(queue, service, submit(queue, service))
        pid = await spare_pid(queue)
        monkeypatch.setenv("ENVMGR_SPARE_TEST", "changed")  # a worker started now sees it
        done = await finished(queue, service, submit(queue, service))
        assert done.status == "succeeded", done.error
        assert done.owner["pid"] != pid
        assert not alive(pid)  # stopped, not left behind

    with_queue(service, scenario)


def test_shutdown_stops_the_spare_and_a_spare_whose_server_is_gone_exits(demo):
    service = demo

    async def scenario():
        queue = BuildQueue(service, 1)
        await finished(queue, service, submit(queue, service))
        pid = await spare_pid(queue)
        await queue.shutdown()
        assert not alive(pid)
        assert queue.spare.proc is None
        # A server that dies closes the spare's stdin (its only link): the spare exits.
        other = BuildQueue(service, 1)
        other.spare.refill()
        pid = await spare_pid(other)
        proc = other.spare.proc
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await other.shutdown()

    asyncio.run(scenario())


def test_a_build_in_a_spare_is_cancelled_like_any(demo, monkeypatch):
    """SIGTERM to the spare's process group: the build ends cancelled, nothing swapped in."""
    service = demo
    monkeypatch.setenv(PAUSE_ENV, "phase:link")  # before the spare starts: it inherits it

    async def scenario(queue):
        queue.spare.refill()
        pid = await spare_pid(queue)
        build = submit(queue, service)
        for _ in range(3000):
            if stopped(pid):
                break
            await asyncio.sleep(0.01)
        assert stopped(pid), "the build never reached its link phase in the spare"
        cancel = asyncio.create_task(queue.cancel("local", "demo", build.version))
        await asyncio.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)
        await cancel
        done = await finished(queue, service, build)
        assert done.owner["pid"] == pid
        assert done.status == "cancelled", done.error
        assert service.envs.get("local", "demo")["version"] is None
        assert not alive(pid)

    with_queue(service, scenario)


def test_the_client_a_spare_made_is_used_only_if_the_credentials_did_not_change(
    tmp_path, monkeypatch
):
    """A spare makes its rattler client while it waits; rattler reads the credential files
    when a client is made, so one added meanwhile makes the build make its own client."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("RATTLER_AUTH_FILE", str(tmp_path / "auth.json"))
    made = object()
    monkeypatch.setattr(spare, "_premade", (made, spare._credentials_stamp()))
    assert spare.premade_client() is made
    assert spare.premade_client() is None  # once only
    for path in (
        tmp_path / ".netrc",
        tmp_path / "auth.json",
        tmp_path / ".rattler/credentials.json",
    ):
        monkeypatch.setattr(spare, "_premade", (made, spare._credentials_stamp()))
        path.parent.mkdir(exist_ok=True)
        path.write_text("machine example.org login me password secret\n")
        assert spare.premade_client() is None, path


@pytest.fixture
def no_spare(envmgr_settings):
    envmgr_settings["spare_worker"] = False


async def test_a_server_configured_without_a_spare_starts_a_worker_per_build(
    no_spare, jp_fetch, jp_serverapp, service
):
    """``spare_worker = False`` (hubs short of memory): every build has a worker of its own,
    and nothing waits between builds."""
    from test_api import create_and_build

    extension = next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_env_manager"]))
    assert extension.queue.spare is None
    owners = []
    for _ in range(2):
        build = await create_and_build(jp_fetch, f"nospare{len(owners)}", conda=["alpha"])
        assert build["status"] == "succeeded"
        record = service.builds.get("local", f"nospare{len(owners)}", build["version"])
        owners.append(record.owner["pid"])
    assert owners[0] != owners[1]
    spares = []
    for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split():
        with contextlib.suppress(OSError):  # one that ended meanwhile
            spares += [pid] if SPARE_FLAG in cmdline(int(pid)) else []
    assert spares == []


def autogroups() -> bool:
    """Whether the kernel schedules by session (autogroup)."""
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return enabled.exists() and enabled.read_text().strip() == "1"


def priority(pid: int) -> tuple[int, str | None]:
    """The process's nice, and its session's (autogroup) nice where the kernel schedules by
    session (None where it does not). A process in the boot session's group (what a CI
    runner's processes may be in) has an empty file there: "default" stands for it."""
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    if not autogroups():
        return nice, None
    words = Path(f"/proc/{pid}/autogroup").read_text().split()
    return nice, words[-1] if words else "default"


def test_a_build_runs_below_the_server_in_a_worker_of_its_own_or_in_the_spare(demo, monkeypatch):
    """The server's queue starts each worker in a session of its own: with autogroup scheduling
    (Linux's default) that session's nice is raised too, or nice would not slow it down against
    the server at all."""
    service = demo
    monkeypatch.setenv(PAUSE_ENV, "phase:link")
    base = os.nice(0)  # this process's: the server's here
    niceness = service.settings.build_niceness
    assert niceness > 0  # the default: a test at 0 would prove nothing
    # A worker is a session of its own, whatever the server's is: its group's nice is raised
    session_nice = str(min(niceness, 19)) if autogroups() else None

    async def paused(build) -> int:
        for _ in range(3000):
            owner = service.builds.get("local", "demo", build.version).owner or {}
            if owner.get("pid") and stopped(owner["pid"]):
                return owner["pid"]
            await asyncio.sleep(0.01)
        raise AssertionError("the build never reached its link phase")

    async def scenario(queue):
        first = submit(queue, service)  # the first build: a worker of its own
        pid = await paused(first)
        assert priority(pid) == (min(base + niceness, 19), session_nice)
        os.killpg(pid, signal.SIGCONT)
        assert (await finished(queue, service, first)).status == "succeeded"
        spare = await spare_pid(queue)
        assert priority(spare) == (base, None if session_nice is None else "0")  # until its job
        second = submit(queue, service)
        assert await paused(second) == spare
        assert priority(spare) == (min(base + niceness, 19), session_nice)
        os.killpg(spare, signal.SIGCONT)
        assert (await finished(queue, service, second)).status == "succeeded"

    with_queue(service, scenario)


async def over_and_stopped(queue: BuildQueue, service, build) -> int:
    """The pid of ``build``'s worker, once the queue is done with the build (succeeded) and
    that worker is stopped at its pause point after its end (PAUSE_ENV "after-end")."""
    done = await asyncio.wait_for(finished(queue, service, build), 60)
    assert done.status == "succeeded", done.error
    pid = done.owner["pid"]
    for _ in range(1000):
        if stopped(pid):
            return pid
        await asyncio.sleep(0.01)
    raise AssertionError(f"worker {pid} did not stop after its end")


def test_a_build_is_over_once_its_worker_recorded_its_end_not_when_it_exits(demo, monkeypatch):
    """A worker's exit (its threads, its memory: a few ms) is not waited for once it has
    recorded its end and let go of the build lock: the build's end is told, and the
    environment's next build runs, while that worker is still there."""
    service = demo
    monkeypatch.setenv(PAUSE_ENV, "after-end")  # every worker stops after its last line

    async def scenario(queue):
        first = await over_and_stopped(queue, service, submit(queue, service))
        second = submit(queue, service)  # the first worker holds no lock any more
        pid = await over_and_stopped(queue, service, second)
        assert pid != first
        assert service.envs.get("local", "demo")["version"] == second.version
        for worker in (first, pid):
            os.killpg(worker, signal.SIGCONT)
        for _ in range(1000):
            if not queue._reaping:
                break
            await asyncio.sleep(0.01)
        assert not queue._reaping and not alive(first) and not alive(pid)  # reaped aside

    with_queue(service, scenario)


def test_a_stopping_server_awaits_a_while_the_workers_past_their_end(demo, monkeypatch):
    """shutdown() awaits the exit of a worker whose build is over, so that none is left
    unreaped; one that does not exit within CANCEL_GRACE_S is killed (its build is recorded)."""
    service = demo
    monkeypatch.setenv(PAUSE_ENV, "after-end")
    monkeypatch.setattr(runner, "CANCEL_GRACE_S", 1.0)

    async def main():
        queue = BuildQueue(service, 1, spare=False)
        pid = await over_and_stopped(queue, service, submit(queue, service))
        stopping = asyncio.create_task(queue.shutdown())
        await asyncio.sleep(0.3)
        assert not stopping.done()  # waiting for that worker
        os.killpg(pid, signal.SIGCONT)
        await asyncio.wait_for(stopping, 30)
        assert not alive(pid)
        # One still stopped when the grace is over: killed, reaped, the server stopped.
        queue = BuildQueue(service, 1, spare=False)
        pid = await over_and_stopped(queue, service, submit(queue, service))
        try:
            await asyncio.wait_for(queue.shutdown(), 30)
            assert not alive(pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        assert service.builds.get("local", "demo", 2).status == "succeeded"

    asyncio.run(main())
