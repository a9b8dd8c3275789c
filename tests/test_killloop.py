"""Kill loop: builds killed at every point of their life, then recovered and checked.

Each trial starts a build, kills something (the worker, its parent, or both; the parent is the
foreground CLI or a real ``jupyter server``), lets recovery run (a new server's start, or the
core's ``recover()`` as a server start does) and checks that the store says one of two things:
"vN succeeded and is in use" or "vN did not happen and v(N-1) is in use"; that no staging,
trash, swap journal or worker process is left; and, in a sample of trials and at the end, that
the version in use starts a real kernel whose ``sys.prefix`` is the prefix.

Kills land at named points (the worker stops itself there: ``JUPYTER_ENV_MANAGER_TEST_PAUSE_AT``)
including between the swap and the record, and at random times. Figures are printed at the end
(``-s`` shows them). Bounded: KILLLOOP_TRIALS (default 32) trials of a small build.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time

from helpers import run_in_kernel
from killloop import Server, check_consistent, stopped, wait_for, workers

from jupyter_env_manager.core.service import EnvService
from jupyter_env_manager.core.store import PAUSE_ENV

POINTS = [
    "running",
    "phase:solve",
    "phase:download",
    "phase:link",
    "phase:pip",
    "phase:verify",
    "before-swap",
    "version-dir",
    "link",
    "swap",
    "after-swap",
    "phase:kernel",
    "before-record",
]
TARGETS = ["worker", "parent", "both"]


def plan(rng: random.Random, trials: int) -> list[tuple[str, str, str | None]]:
    """(door, target, pause point or None for a random-time kill) for each trial."""
    out: list[tuple[str, str, str | None]] = []
    for i, point in enumerate(POINTS * 2):
        out.append(("cli", TARGETS[i % 3], point))
    servers = max(4, trials // 8)
    for i in range(servers):
        out.append(("server", TARGETS[i % 3], rng.choice(["before-swap", "swap", None])))
    while len(out) < trials:
        out.append(("cli", rng.choice(TARGETS), None))
    return out[:trials] if trials < len(out) else out


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_kill_loop(service, config_file, envmgr_settings):
    trials = int(os.environ.get("KILLLOOP_TRIALS", "32"))
    seed = int(os.environ.get("KILLLOOP_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    store = service.local
    root = store.root
    name = "kl"
    service.envs.create(
        {"scope": "local", "name": name, "conda": ["alpha"], "pip": ["envmgr-hello"]}
    )
    cli = [sys.executable, "-m", "jupyter_env_manager.cli", "build", name]
    started = time.monotonic()
    first = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    build_s = time.monotonic() - started
    in_use = store.active_version(name)
    figures = {"trials": 0, "succeeded": 0, "not-happened": 0, "kernels": 0, "server-starts": 0}
    by_kill: dict[str, int] = {}
    server: Server | None = None
    planned = plan(rng, trials)

    def env_for(index: int) -> dict[str, str]:
        env = dict(os.environ)
        if index < len(planned) and planned[index][2]:
            env[PAUSE_ENV] = planned[index][2]
        return env

    try:
        for i, (door, target, point) in enumerate(planned):
            env = env_for(i)
            floor = max(store.versions(name))
            delay = rng.uniform(0.05, build_s) if point is None else None
            if door == "cli":
                parent = subprocess.Popen(
                    cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                parent_pid = parent.pid
            else:
                if server is None:
                    server = Server(env=env)
                    figures["server-starts"] += 1
                    assert server.call("GET", f"env-manager/environments/local/{name}")[0] == 200
                status, body = server.call("POST", f"env-manager/environments/local/{name}/builds")
                assert status == 202, body
                parent, parent_pid = None, server.proc.pid
            label = point or f"{delay:.2f}s"
            print(f"kill loop: trial {i}: {door} {target}@{label}", file=sys.stderr)
            version = wait_for(
                lambda floor=floor: max(store.versions(name)) > floor and max(store.versions(name)),
                60,
                "the build to be queued",
            )
            if point:
                # The worker stops itself at the point (or ends first: a point it never reaches).
                def paused(version=version):
                    pids = workers(root)
                    if pids and all(stopped(p) for p in pids):
                        return pids
                    build = store.build_of(name, version, None)  # None: being claimed
                    return ["done"] if build and build.status not in ("queued", "running") else None

                wait_for(paused, 120, f"the worker to stop at {point}")
            else:
                time.sleep(delay)
            pids = workers(root)
            if target in ("worker", "both"):
                for pid in pids:
                    kill_group(pid)
            if target in ("parent", "both"):
                os.kill(parent_pid, signal.SIGKILL)
                if door == "server":
                    server.stop(kill=True)
                    server = None

            def ended() -> bool:  # survivors go on: a worker must outlive its parent
                pids = workers(root)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGCONT)
                return not pids and not store.build_locked(name)

            wait_for(ended, 180, "the workers to end", every=0.1)
            if parent is not None:
                parent.wait(120)
            # Recovery: a server start (the next server trial's) or what one does.
            if door == "server" and server is not None:
                server.stop(kill=True)  # the worker was killed under a live server: restart
                server = None
            if door == "server":
                server = Server(env=env_for(i + 1))  # kept for the next trial if a server's
                figures["server-starts"] += 1
                status, view = server.call("GET", f"env-manager/environments/local/{name}")
                assert status == 200, view
                # The server answers at once; its start-up recovery clears old prefixes in the
                # background: wait for that state (bounded), then check everything.
                wait_for(
                    lambda: not any(store.trash.iterdir()),
                    60,
                    "the new server's start-up recovery to clear the trash",
                )
            else:
                fresh = EnvService(service.settings)
                fresh.recover()
                fresh.kernels.sync()
            previous = in_use
            in_use, status = check_consistent(store, name, previous)
            if door == "server":
                assert view["version"] == in_use and view["versions"][-1]["status"] == status
            if door == "server" and (i + 1 >= len(planned) or planned[i + 1][0] != "server"):
                server.stop()
                server = None
            kind = "succeeded" if status == "succeeded" else "not-happened"
            figures[kind] += 1
            figures["trials"] += 1
            key = f"{door}/{target}@{point or 'random'}"
            by_kill[key] = by_kill.get(key, 0) + 1
            if i % 6 == 5:
                out, _ = run_in_kernel(f"envmgr-{name}", "import sys; print(sys.prefix)")
                assert out.strip() == str(store.active_prefix(name)), (key, out)
                figures["kernels"] += 1
    finally:
        if server is not None:
            server.stop()
        for pid in workers(root):
            kill_group(pid)
    service.kernels.sync()
    out, _ = run_in_kernel(f"envmgr-{name}", "import sys, envmgr_hello; print(sys.prefix)")
    assert out.strip() == str(store.active_prefix(name))
    figures["kernels"] += 1
    elapsed = time.monotonic() - started
    print(
        f"\nkill loop: seed {seed}, {figures['trials']} trials in {elapsed:.0f} s "
        f"(one build {build_s:.1f} s): {figures['succeeded']} ended 'vN succeeded and in use', "
        f"{figures['not-happened']} 'vN did not happen, v(N-1) in use'; "
        f"{figures['kernels']} kernels started; {figures['server-starts']} server starts; "
        f"0 inconsistencies, 0 leftovers, 0 orphan workers"
    )
    print("kill loop: kills by door/target@point: " + ", ".join(sorted(by_kill)))
    assert figures["trials"] == trials
