"""Rows 3, 10 and 11: a build's fixed cost, how soon its kernel is visible, and by hand.

- Row 10: create + build of a python-only environment (``kernel_packages=[]``) through a
  server's build queue after its first build (handed to the spare worker it keeps started), with
  its parts (worker start, solve, cache check, link, verify); beside it the same build with a
  worker started for it (``run_foreground``, as the CLI runs it), an interpreter start and
  rattler's solve + install of the same in-process.
- Row 3: from the client's request until ``GET /api/kernelspecs`` lists the kernel over HTTP, for
  ``POST activate`` (against ``python -m ipykernel install --user`` by hand, also until the server
  lists it) and for ``POST environments`` with ``build: true`` (against the build's own time as
  its worker recorded it).
- Row 11: the whole job by hand, in the same run: ``python -m venv`` + ``uv pip install`` (and
  ``pip install``) of ipykernel and 30 wheels from local wheelhouses + ``python -m ipykernel
  install --user`` until ``jupyter kernelspec list`` shows it, against ``POST environments``
  (``python`` + ``ipykernel`` from the conda channel, the same 30 wheels) until
  ``GET /api/kernelspecs`` lists the kernel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import (
    CLIENTS_TOLD,
    RUN,
    WORK,
    Built,
    Fixture,
    Row,
    Server,
    breakdown,
    build_env,
    median,
    ms,
    parse_stamp,
    rmtree,
    run,
    summarize,
)

SCRATCH = RUN / "scratch"
POLL_S = 0.005
POLL_LIMIT_S = 300.0
FIXED_COST_GOAL_S = 0.080


# -- row 10 ------------------------------------------------------------------------------------


def _python_start(code: str) -> float:
    return run([sys.executable, "-I", "-c", code]) if code else run([sys.executable, "-c", "pass"])


def _library_floor(fx: Fixture, service) -> tuple[float, float]:
    """rattler's solve (a new gateway, as each worker makes) and install, in-process."""
    from rattler import Platform, install, solve

    from jupyter_env_manager.core.diagnose import make_gateway
    from jupyter_env_manager.core.spec import python_match_spec

    target = SCRATCH / "fixed-floor"
    rmtree(target)

    async def both() -> tuple[float, float]:
        started = time.perf_counter()
        records = await solve(
            sources=[fx.channel],
            specs=[python_match_spec(service.settings.default_python)],
            gateway=make_gateway(service.settings.pkgs_dir, False),
            platforms=[Platform.current(), Platform("noarch")],
        )
        solved = time.perf_counter()
        await install(
            records,
            target_prefix=target,
            cache_dir=Path(service.settings.pkgs_dir),
            installed_packages=[],
            show_progress=False,
        )
        return solved - started, time.perf_counter() - solved

    out = asyncio.run(both())
    rmtree(target)
    return out


class QueueThread:
    """A server's build queue in this process: its event loop runs in a thread, as the
    server's does; builds are submitted and awaited from the caller's thread. A build is timed
    until its ``finished`` event is emitted, as the server's clients are told (the panel waits
    for it): its end recorded and its kernelspec synced; what the queue does after it (the
    next spare's start) is not the user's wait."""

    def __init__(self, service):
        from jupyter_env_manager.core.runner import BuildQueue

        self.service = service
        self.told: dict[tuple[str, str, int], tuple[float, float]] = {}
        service._door_emit = self._heard
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> BuildQueue:
            return BuildQueue(service, 1, loop=asyncio.get_running_loop())

        self.queue = self._call(make())

    def _heard(self, kind: str, data: dict) -> None:
        if kind == "build" and data.get("action") == "finished":
            key = (data["scope"], data["name"], data["version"])
            self.told[key] = (time.perf_counter(), time.time())

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def build(self, scope: str, name: str, create: dict) -> Built:
        """Create and build, until the queue is done with the build (recorded, kernels told)."""
        started = time.perf_counter()
        self.service.envs.create({"scope": scope, "name": name, **create})
        return self.run(scope, name, self.service.builds.prepare(scope, name), started)

    def run(self, scope: str, name: str, build, started: float) -> Built:
        """Run a prepared build through the queue until the queue is done with it; timed from
        ``started`` (perf_counter) until its ``finished`` event."""
        self.queue.submit(scope, name, build)
        self._call(self.queue.wait(build.id))
        finished = self.service.builds.get(scope, name, build.version)
        if finished.status != "succeeded":
            raise RuntimeError(f"build of {scope}/{name} {finished.status}: {finished.error}")
        told_perf, told_wall = self.told.pop((scope, name, build.version))
        return Built(told_perf - started, finished, told_wall, told_perf)

    def build_ready(self, scope: str, name: str, create: dict) -> Built:
        """:meth:`build` in the queue's ready spare worker, as a server after its first build
        and a user's pause; returns once the next spare is ready too (no baseline shares the
        CPU with its imports)."""
        spare = self.ready_spare()
        return self.ran_in(spare, self.build(scope, name, create))

    def ran_in(self, spare: int, built: Built) -> Built:
        """``built``, checked to have run in the spare worker ``spare``, once the next spare
        is ready (no baseline shares the CPU with its imports)."""
        if built.build.owner["pid"] != spare:
            raise RuntimeError(f"build v{built.build.version} did not run in the spare worker")
        self.ready_spare()
        return built

    def start_spare(self) -> None:
        """Start the spare worker now, as a server's queue does after its first build."""

        async def refill() -> None:
            self.queue.spare.refill()

        self._call(refill())

    def spare_pid(self) -> int | None:
        spare = self.queue.spare
        return spare.proc.pid if spare is not None and spare.proc is not None else None

    def ready_spare(self, timeout: float = 30.0) -> int:
        """The spare worker, once it waits for a build (its imports done: no CPU used over
        50 ms), as after a user's pause between two builds."""
        deadline = time.perf_counter() + timeout
        last = None
        while time.perf_counter() < deadline:
            pid = self.spare_pid()
            if pid is not None:
                now = _cpu_ticks(pid)
                if now == last:
                    return pid
                last = now
            time.sleep(0.05)
        raise RuntimeError("no spare worker became ready")

    def close(self) -> None:
        self._call(self.queue.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _idle_spare(pid: int) -> str:
    """RSS and CPU over 1 s of the idle spare worker."""
    before = _cpu_ticks(pid)
    time.sleep(1.0)
    cpu = (_cpu_ticks(pid) - before) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return f"the idle spare worker: RSS {int(rss) / 1024:.0f} MiB, CPU {cpu * 1000:.0f} ms over 1 s"


def _cpu_loop() -> float:
    """The CPU time of a fixed pure-Python workload: how fast this machine's CPU is right now
    (a virtual CPU whose physical core others share runs slower without showing as steal)."""
    started = time.thread_time()
    total = 0
    for i in range(300_000):
        total += i * i % 7
    return time.thread_time() - started


def _machine() -> tuple[list[int], dict[str, float]]:
    """/proc/stat's CPU ticks (user ... steal) and the pressure stall totals (µs) of cpu and io
    ("some": a task waited for it)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    stalls = {}
    for kind in ("cpu", "io"):
        try:
            line = Path(f"/proc/pressure/{kind}").read_text().split("\n", 1)[0]
        except OSError:  # no PSI in this kernel
            continue
        stalls[kind] = float(line.rsplit("total=", 1)[1])
    return ticks, stalls


def _machine_note(start, end, seconds: float, cpu_loop: list[float]) -> str:
    """What the machine was doing over the row's builds: its CPU's speed, steal, stalls."""
    (t0, p0), (t1, p1) = start, end
    spent = [b - a for a, b in zip(t0, t1, strict=True)]
    total = sum(spent) or 1
    stalls = ", ".join(f"{k} {(p1[k] - p0[k]) / 1e6 / seconds * 100:.1f}%" for k in p1 if k in p0)
    return (
        f"the machine over these builds ({seconds:.1f} s): a fixed CPU-bound loop "
        f"{ms(median(cpu_loop))} (thread CPU time, median; the same code's in other runs tells "
        f"the CPU's speed then); steal {spent[7] / total * 100:.1f}% and idle "
        f"{spent[3] / total * 100:.0f}% of the CPUs' time; pressure stalls (some task waiting) "
        f"{stalls or 'not available'} of the time"
    )


def fixed_cost(fx: Fixture, reps: int, log) -> Row:
    """Row 10: create + build of a python-only environment, with its parts."""
    service = fx.service(like_for_like_priority=True, kernel_packages=[])
    name, spec = "pyonly", {"conda": []}
    queue = QueueThread(service)
    try:
        # The package cache and repodata cache are warm; the queue's first build (its worker
        # started for it) leaves a spare worker waiting, as a server after its first build.
        queue.build("local", name, spec)
        service.envs.delete("local", name)
        SCRATCH.mkdir(exist_ok=True)
        ours, parts, cold, cold_parts = [], [], [], []
        py_start, worker_import, solve_t, install_t, cpu_loop = [], [], [], [], []
        machine_start, row_start = _machine(), time.perf_counter()
        for i in range(reps):
            built = queue.build_ready("local", name, spec)
            ours.append(built.seconds)
            parts.append(breakdown(built, CLIENTS_TOLD))
            service.envs.delete("local", name)

            def by_cli() -> None:
                got = build_env(service, "local", name, spec)
                cold.append(got.seconds)
                cold_parts.append(breakdown(got))
                service.envs.delete("local", name)

            def floor() -> None:
                got = _library_floor(fx, service)
                solve_t.append(got[0])
                install_t.append(got[1])

            steps = [
                lambda: py_start.append(_python_start("")),
                lambda: worker_import.append(
                    _python_start("import jupyter_env_manager.core.worker")
                ),
                floor,
                by_cli,
                lambda: cpu_loop.append(_cpu_loop()),
            ]
            for k in range(len(steps)):
                steps[(i + k) % len(steps)]()
        machine = _machine_note(
            machine_start, _machine(), time.perf_counter() - row_start, cpu_loop
        )
        idle = _idle_spare(queue.ready_spare())
    finally:
        queue.close()
    o, p, w, c = median(ours), median(py_start), median(worker_import), median(cold)
    s, n = median(solve_t), median(install_t)
    log(f"fixed cost: {ms(o)}, cold {ms(c)} (python start {ms(p)}, worker import {ms(w)})")
    notes = [
        summarize(parts) + " (a server's queue after its first build: the build is handed to "
        "its spare worker; download = the package cache check, link = linking 1 package; "
        "clients told = the end recorded, the kernelspec synced and the finished event "
        "emitted; its worker's exit is not waited for)",
        f"cold start, a worker started for the build (`run_foreground`, as the CLI and the "
        f"magics run every build, and a server its first): median {ms(c)}; "
        + summarize(cold_parts),
        idle,
        f"side by side: `python -c pass` {ms(p)}; `python -I -c 'import "
        f"jupyter_env_manager.core.worker'` {ms(w)} (a worker's start before it does anything); "
        f"rattler in-process: solve {ms(s)} (new gateway, cached repodata), install {ms(n)}",
        machine,
    ]
    notes += _with_kernel(fx, log)
    notes += _profile_fixed(service, name, spec, log)
    return Row(
        "10",
        "fixed cost of a build: create + build of a python-only environment (kernel_packages=[])",
        f"median {ms(o)} (cold start: {ms(c)})",
        f"python start {ms(p)}, worker import {ms(w)}; rattler solve + install {ms(s + n)}",
        f"{o / (s + n):.1f}× rattler's solve + install; {o / w:.1f}× a worker's import",
        f"< {FIXED_COST_GOAL_S * 1000:.0f} ms",
        o < FIXED_COST_GOAL_S,
        notes,
    )


def _with_kernel(fx: Fixture, log) -> list[str]:
    """The same with the default kernel package: the verify phase imports ipykernel."""
    service = fx.service(like_for_like_priority=True)
    name, spec = "pykernel", {"conda": []}
    build_env(service, "local", name, spec)
    service.envs.delete("local", name)
    totals, parts = [], []
    for _ in range(3):
        built = build_env(service, "local", name, spec)
        totals.append(built.seconds)
        parts.append(breakdown(built))
        service.envs.delete("local", name)
    verify = median([p.get("verify", 0.0) for p in parts])
    log(f"python + ipykernel: {ms(median(totals))}, verify {ms(verify)}")
    return [
        f"with the default kernel package (python + ipykernel, 3 builds): median "
        f"{ms(median(totals))}; {summarize(parts)}"
    ]


def _profile_fixed(service, name: str, spec: dict, log) -> list[str]:
    import profiles

    settings = json.dumps(
        {k: getattr(service.settings, k) for k in ("channels", "kernel_packages", "pkgs_dir")}
    )
    argv = [sys.executable, str(Path(__file__).with_name("bigenv.py")), "build", settings, name]
    out, error = profiles.record_py_spy(name, [*argv, json.dumps(spec)], rate=250)
    if out is not None:  # without py-spy nothing was built
        service.envs.delete("local", name)
    notes = [f"a worker's imports (python -X importtime): {profiles.worker_imports()}"]
    if out is None:
        return [*notes, f"no py-spy profile: {error}"]
    log(f"profile of a {name} build: {out}")
    summary = profiles.summarize_py_spy(out, rate=250)
    return [*notes, f"py-spy of one cold build (a worker started for it, {out.name}): {summary}"]


# -- rows 3 and 11: a real server --------------------------------------------------------------


def _listed(server: Server, kernel: str, t0: float) -> float:
    """Poll GET /api/kernelspecs until ``kernel`` is listed; perf_counter() then."""
    while True:
        specs = server.json("GET", "api/kernelspecs")["kernelspecs"]
        now = time.perf_counter()
        if kernel in specs:
            return now
        if now - t0 > POLL_LIMIT_S:
            raise RuntimeError(f"{kernel} not listed after {POLL_LIMIT_S:.0f}s")
        time.sleep(POLL_S)


def _create_until_listed(server: Server, name: str, spec: dict) -> tuple[float, dict]:
    """POST environments with build: true until the kernel is listed; (seconds, build)."""
    t0 = time.perf_counter()
    server.json(
        "POST",
        "env-manager/environments",
        {"scope": "local", "name": name, **spec, "build": True},
        expect=(201, 202),
    )
    seconds = _listed(server, f"envmgr-{name}", t0) - t0
    base = f"env-manager/environments/local/{name}"
    while True:  # the kernel is written before the build's end is recorded
        build = server.json("GET", f"{base}/builds/1")
        if build["status"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    if build["status"] != "succeeded":
        raise RuntimeError(f"build of {name} {build['status']}: {build.get('error')}")
    return seconds, build


def _delete(server: Server, name: str) -> None:
    """DELETE an environment once its worker has exited (it holds the build lock until then)."""
    deadline = time.perf_counter() + 60
    while True:
        status, data = server.request("DELETE", f"env-manager/environments/local/{name}")
        if status in (200, 202, 204):
            return
        if status != 409 or time.perf_counter() > deadline:
            raise RuntimeError(f"DELETE {name} -> {status}: {data[:300]!r}")
        time.sleep(0.05)


def _by_hand_kernel(server: Server, python: Path, kernel: str) -> float:
    """``python -m ipykernel install --user`` until GET /api/kernelspecs lists it."""
    t0 = time.perf_counter()
    argv = [str(python), "-m", "ipykernel", "install", "--user", "--name", kernel]
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return _listed(server, kernel, t0) - t0


def kernel_visible(server: Server, service, reps: int, log) -> Row:
    """Row 3: from the client's request until the server lists the kernel."""
    from jupyter_env_manager.core.kernels import kernels_dir

    after_create, beyond_build = [], []
    for i in range(reps):
        name = f"visible{i}"
        seconds, build = _create_until_listed(server, name, {"conda": ["synth-003"]})
        after_create.append(seconds)
        recorded = parse_stamp(build["finished_at"]) - parse_stamp(build["created_at"])
        beyond_build.append(seconds - recorded)
    env = "env-manager/environments/local/visible0"
    python = service.local.active_prefix("visible0") / "bin" / "python"
    activate, by_hand = [], []
    for i in range(reps):
        server.json("POST", env + "/deactivate")
        if "envmgr-visible0" in server.json("GET", "api/kernelspecs")["kernelspecs"]:
            raise RuntimeError("deactivate left the kernelspec listed")
        rmtree(kernels_dir() / "byhand-visible")
        for which in ("ours", "hand") if i % 2 == 0 else ("hand", "ours"):
            if which == "ours":
                t0 = time.perf_counter()
                server.json("POST", env + "/activate")
                activate.append(_listed(server, "envmgr-visible0", t0) - t0)
            else:
                by_hand.append(_by_hand_kernel(server, python, "byhand-visible"))
    rmtree(kernels_dir() / "byhand-visible")
    for i in range(reps):  # later rows find the server's kernels as they were
        _delete(server, f"visible{i}")
    a, h, c, b = median(activate), median(by_hand), median(after_create), median(beyond_build)
    log(f"kernel visible: activate {ms(a)} vs by hand {ms(h)}; create+build {ms(c)} (+{ms(b)})")
    met = a <= h and max(activate) < 1.0 and b < 0.1
    return Row(
        "3",
        "kernel visible: from the client's request until GET /api/kernelspecs lists it (HTTP)",
        f"POST activate: median {ms(a)}, max {ms(max(activate))}; POST environments "
        f"(build, synth-003 + ipykernel): median {ms(c)}, {ms(b)} beyond the build's own time",
        f"`ipykernel install --user` by hand {ms(h)}; the build as its worker recorded it "
        f"{ms(c - b)}",
        f"activate {a / h:.2f}× by hand",
        "activate ≤ by hand and < 1 s; a build's kernel listed < 100 ms after its recorded end",
        met,
        [
            "both polled every 5 ms over one kept-alive HTTP connection; by hand runs the "
            "environment's own python (ipykernel install writes the same kind of kernelspec)",
            "beyond the build = request→listed minus created_at→finished_at of the build record "
            "(HTTP, the queue's hand-off, polling); per build: "
            + ", ".join(f"{x * 1000:.0f}" for x in beyond_build)
            + " ms",
        ],
    )


# -- row 11 ------------------------------------------------------------------------------------


def ipykernel_wheels(log) -> tuple[Path | None, str]:
    """Wheels of ipykernel and its dependencies at the host's versions (the conda channel's
    ``ipykernel`` is made of the same installed files), downloaded once from the package index
    into ``bench/.work/cache``. (directory, why not)"""
    from jupyter_env_manager.testing.channel import distribution_closure

    pins = sorted(f"{d.metadata['Name']}=={d.version}" for d in distribution_closure(["ipykernel"]))
    key = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:10]
    target = WORK / "cache" / f"ipykernel-wheels-{key}"
    if (target / ".complete").exists():
        return target, ""
    rmtree(target)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    argv += ["--only-binary", ":all:", "--dest", str(target), *pins]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        rmtree(target)
        return None, f"pip download of {len(pins)} wheels failed: {done.stderr.strip()[-200:]}"
    (target / ".complete").write_text("\n".join(pins) + "\n")
    log(f"{len(pins)} ipykernel wheels downloaded into {target}")
    return target, ""


def _jupyter_lists(kernel: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return any(line.split()[:1] == [kernel] for line in done.stdout.splitlines())


def _by_hand(tool: str, links: list[Path], dists: list[str], i: int) -> float:
    """venv + install + ipykernel install --user until jupyter kernelspec list shows it."""
    from uv import find_uv_bin

    from jupyter_env_manager.core.kernels import kernels_dir
    from jupyter_env_manager.testing.channel import host_base_interpreter

    venv = SCRATCH / f"byhand-{tool}-{i}"
    kernel = f"byhand-{tool}-{i}"
    rmtree(venv)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    find = [a for link in links for a in ("--find-links", str(link))]
    t0 = time.perf_counter()
    if tool == "uv":
        run([str(host_base_interpreter()), "-m", "venv", "--without-pip", str(venv)])
        argv = [
            find_uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--python",
            str(venv / "bin/python"),
        ]
        env = {**clean, "UV_NO_PROGRESS": "1", "NO_COLOR": "1", "UV_PYTHON_DOWNLOADS": "never"}
    else:
        run([str(host_base_interpreter()), "-m", "venv", str(venv)])
        argv = [str(venv / "bin/python"), "-m", "pip", "install", "--disable-pip-version-check"]
        env = {**clean, "PIP_CONFIG_FILE": os.devnull}
    argv += ["--no-index", *find, "--", "ipykernel", *dists]
    run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run(
        [str(venv / "bin/python"), "-m", "ipykernel", "install", "--user", "--name", kernel],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not _jupyter_lists(kernel):
        if time.perf_counter() - t0 > POLL_LIMIT_S:
            raise RuntimeError(f"{kernel} never listed by jupyter kernelspec list")
    seconds = time.perf_counter() - t0
    rmtree(venv)
    rmtree(kernels_dir() / kernel)
    return seconds


def by_hand(server: Server, service, fx: Fixture, reps: int, log) -> Row:
    """Row 11: create + build until the server lists the kernel vs the same by hand."""
    wheels, why = ipykernel_wheels(log)
    measure = "venv + ipykernel + 30 wheels + kernelspec, by hand vs ours (until listed)"
    if wheels is None:
        return Row(
            "11", measure, "—", "—", "—", "ours ≤ by hand with uv", None, [f"skipped: {why}"]
        )
    dists = [f"synthetic-pkg-{i}" for i in range(30)]
    links = [fx.wheelhouse, wheels]
    SCRATCH.mkdir(exist_ok=True)
    # warm-up: uv's cache, our package cache, the page cache for both
    _by_hand("uv", links, dists, 99)
    _create_until_listed(server, "byhand-warm", {"pip": dists})
    ours, uv_t, pip_t, parts = [], [], [], []
    for i in range(reps):
        order = ("ours", "uv", "pip")
        for k in range(3):
            which = order[(i + k) % 3]
            if which == "ours":
                seconds, build = _create_until_listed(server, f"byhand{i}", {"pip": dists})
                ours.append(seconds)
                parts.append(build)
                _delete(server, f"byhand{i}")
            else:
                (uv_t if which == "uv" else pip_t).append(_by_hand(which, links, dists, i))
    _delete(server, "byhand-warm")
    o, u, p = median(ours), median(uv_t), median(pip_t)
    log(f"by hand: ours {ms(o)} vs uv {ms(u)}, pip {ms(p)}")
    phases = [
        {
            "queued→worker running": parse_stamp(b["started_at"]) - parse_stamp(b["created_at"]),
            **{
                ph["name"]: parse_stamp(ph["finished_at"]) - parse_stamp(ph["started_at"])
                for ph in b.get("phases", [])
                if ph.get("finished_at")
            },
        }
        for b in parts
    ]
    return Row(
        "11",
        "python + ipykernel + 30 wheels, until the kernel is listed: ours (POST environments, "
        "until GET /api/kernelspecs) vs by hand (venv + install + ipykernel install --user, "
        "until jupyter kernelspec list)",
        f"median {ms(o)}",
        f"by hand with uv {ms(u)}, with pip {ms(p)}",
        f"{o / u:.2f}× uv by hand, {o / p:.2f}× pip by hand",
        "ours ≤ by hand with uv",
        o <= u,
        [
            summarize(phases) + " (phases of our builds)",
            "by hand: `python -m venv` (`--without-pip` for uv), `uv pip install --no-index` / "
            "`pip install --no-index` from the same wheelhouses (ipykernel's 29 wheels at the "
            "host's versions + the 30 synthetic), `python -m ipykernel install --user`, "
            "`jupyter kernelspec list`; ours gets python and ipykernel from the conda channel "
            "(its package cache warm), the 30 wheels with uv (its cache warm)",
        ],
    )


def server(fx: Fixture) -> Server:
    """A server for rows 3 and 11: build workers at the baselines' CPU priority."""
    return Server("builds", fx.settings(build_niceness=0), RUN / "data", RUN / "config-builds")
