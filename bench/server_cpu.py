"""Rows 20 and 21: the server stays light with thousands of environments.

Row 20: CPU of the server process (``utime + stime`` of ``/proc/<pid>/stat``; its build workers
are other processes) while it runs two builds, with 10 and with 3,000 environments in its
stores, and while it is idle. The two servers run side by side and their builds alternate, so
the machine's drift hits both alike.

Row 21: ``GET /api/kernelspecs`` with one kernelspec per environment (3,000), served by the
extension's caching KernelSpecManager, against jupyter_server's own manager on the same
kernelspec folder (a third server, ``cache_kernelspecs = False``) and against the floor: listing
the folder, reading and parsing each ``kernel.json`` and encoding the same payload, in this
process. Requests alternate between the three.

Replicas are light: what the server reads of an environment is its metadata folder and its
prefix's ``conda-meta`` (the watcher's stats, the kernelspec's activation), so each replica is a
copy of one real environment's metadata and a prefix holding hard links to its conda-meta
records (python + 49 packages, no ipykernel: a Python kernelspec is written all the same).
Half of them are in the local store, half in the shared one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import profiles
from common import RUN, Fixture, Row, Server, build_env, median, ms, pct

from jupyter_env_manager.config import EnvManager

QUIET_ROUNDS = EnvManager.class_traits()["watch_quiet_rounds"].default_value  # the servers' own

SOURCE = "cpusrc"
BUSY = ("busy1", "busy2")
IDLE_S = 10.0
WINDOW_S = 20.0  # two builds kept running this long (each is ~2 s here)
SETTLE_S = 3.0
TICK_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


def make_replicas(service, base: Path, total: int) -> None:
    from jupyter_env_manager.core.store import Store

    source_prefix = service.local.active_prefix(SOURCE)
    source_meta = service.local.env_dir(SOURCE)
    records = sorted((source_prefix / "conda-meta").iterdir())
    for scope in ("local", "shared"):
        store = Store(base / scope, scope)
        store.ensure()
        for i in range(total // 2):
            name = f"env{i:04d}"
            meta = store.prefix(name) / "conda-meta"
            meta.mkdir(parents=True)
            for record in records:
                os.link(record, meta / record.name)
            shutil.copytree(source_meta, store.env_dir(name))
            env_json = store.env_dir(name) / "env.json"
            data = json.loads(env_json.read_text())
            data["spec"]["name"] = data["spec"]["display_name"] = name
            env_json.write_text(json.dumps(data, indent=1))


def kernel_count(server: Server) -> int:
    specs = server.json("GET", "api/kernelspecs")["kernelspecs"]
    return sum(1 for name in specs if name.startswith("envmgr-"))


def start(fx: Fixture, name: str, base: Path, total: int, **settings) -> Server:
    server = Server(
        name,
        fx.settings(
            local_root=str(base / "local"),
            shared_root=str(base / "shared"),
            retention_interval_s=0,
            **settings,
        ),
        data_dir=base / "data",
        config_dir=base / f"config-{name}",
    )
    server.start()
    # The start-up sync writes one kernelspec per environment while the server answers.
    deadline = time.monotonic() + 600
    while kernel_count(server) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the start-up sync did not write {total} kernelspecs")
        time.sleep(0.5)
    return server


def idle_cpu(server: Server) -> float:
    """Share of a core the server uses doing nothing for IDLE_S (after SETTLE_S of calm)."""
    assert server.proc is not None
    time.sleep(SETTLE_S)
    before, started = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(IDLE_S)
    return (cpu_seconds(server.proc.pid) - before) / (time.monotonic() - started)


def builds_cpu(server: Server, base: Path, first: bool) -> float:
    """Share of a core the server uses over WINDOW_S while two builds run (each started again
    as soon as it ends, through the REST API)."""
    from jupyter_env_manager.core.store import Store

    assert server.proc is not None
    store = Store(base / "local", "local")
    pid = server.proc.pid
    if first:
        for name in BUSY:
            body = {"name": name, "conda": ["synth-199"]}
            server.json("POST", "env-manager/environments", body, expect=(201,))

    def live(name: str) -> bool:
        build = store.latest_build(name)
        if build is not None and build.status not in ("queued", "running", "succeeded"):
            raise RuntimeError(f"{server.name}: a build {build.status}: {build.error}")
        return build is not None and build.status in ("queued", "running")

    before, started = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - started < WINDOW_S:
        for name in BUSY:
            if not live(name):
                server.json("POST", f"env-manager/environments/local/{name}/builds", expect=(202,))
        time.sleep(0.1)
    share = (cpu_seconds(pid) - before) / (time.monotonic() - started)
    while any(live(name) for name in BUSY):  # the last builds end outside the window
        time.sleep(0.1)
    return share


def floor(top: Path) -> tuple[float, int]:
    """(seconds, bytes): list the kernelspec folder, read and parse each kernel.json, encode."""
    started = time.perf_counter()
    specs = {}
    with os.scandir(top) as entries:
        for entry in entries:
            try:
                with open(os.path.join(entry.path, "kernel.json")) as f:
                    specs[entry.name] = {"name": entry.name, "spec": json.load(f), "resources": {}}
            except OSError:
                continue
    body = json.dumps({"default": "python3", "kernelspecs": specs})
    return time.perf_counter() - started, len(body)


def measure(fx: Fixture, big: int, reps: int, requests: int, log) -> list[Row]:
    service = fx.service(kernel_packages=[])
    built = build_env(service, "local", SOURCE, {"conda": ["synth-048"]})
    log(f"server cpu: source environment built ({ms(built.seconds)})")
    bases = {n: RUN / "cpu" / str(n) for n in (10, big)}
    for n, base in bases.items():
        started = time.perf_counter()
        make_replicas(service, base, n)
        log(f"server cpu: {n} replicas made in {time.perf_counter() - started:.1f}s")
    servers: dict[int, Server] = {}
    results: dict[int, list[float]] = {n: [] for n in bases}
    try:
        for n, base in bases.items():
            started = time.perf_counter()
            servers[n] = start(fx, f"cpu-{n}", base, n)
            log(f"server cpu: server with {n} envs up, kernels synced, in "
                f"{time.perf_counter() - started:.1f}s")  # fmt: skip
        idle = {n: idle_cpu(servers[n]) for n in bases}
        log("server cpu: idle " + ", ".join(f"{n}: {idle[n]:.1%}" for n in bases))
        for rep in range(reps):  # alternate, so drift hits both alike
            for n, base in bases.items():
                cpu = builds_cpu(servers[n], base, first=rep == 0)
                results[n].append(cpu)
                log(f"server cpu: {n} envs, two builds running: {cpu:.1%} of a core")
        idle_after = idle_cpu(servers[big])
        # Where the idle servers' CPU goes (after the measures: py-spy's sampling costs a bit).
        spent = {}
        for n in bases:
            raw, error = profiles.attach_py_spy(f"idle-{n}", servers[n].proc.pid, IDLE_S * 3)
            spent[n] = profiles.summarize_ours(raw, IDLE_S * 3) if raw else error
        log("server cpu: idle profiles: " + "; ".join(f"{n}: {v}" for n, v in spent.items()))
        rows = [_row20(big, results, idle, idle_after, reps, spent)]
        # Row 21: the same kernelspecs through jupyter_server's own manager, side by side.
        stock = start(
            fx, "kernelspecs-stock", bases[big], big, cache_kernelspecs=False, watch_interval_s=0
        )
        try:
            ours_t, stock_t, floor_t, core_t = [], [], [], []
            size = 0
            top = bases[big] / "data" / "kernels"
            # The server's own work per request, without HTTP: the cached manager's body.
            from jupyter_env_manager.server.kernelspecs import CachingKernelSpecManager

            core = CachingKernelSpecManager(kernel_dirs=[str(top)], ensure_native_kernel=False)
            core.encoded("python3")
            servers[big].timed_gets("api/kernelspecs", 2)  # warm-up
            stock.timed_gets("api/kernelspecs", 2)
            for _ in range(requests):
                ours_t += servers[big].timed_gets("api/kernelspecs", 1)
                stock_t += stock.timed_gets("api/kernelspecs", 1)
                seconds, size = floor(top)
                floor_t.append(seconds)
                started = time.perf_counter()
                core.encoded("python3")
                core_t.append(time.perf_counter() - started)
            _status, body = servers[big].request("GET", "api/kernelspecs")
            log(
                f"kernelspecs: ours p50 {ms(median(ours_t))} p95 {ms(pct(ours_t, 95))}, stock "
                f"p50 {ms(median(stock_t))}, floor {ms(median(floor_t))}"
            )
            rows.append(_row21(big, ours_t, stock_t, floor_t, core_t, len(body), size, requests))
        finally:
            stock.stop()
        return rows
    finally:
        for server in servers.values():
            server.stop()


def _row20(big, results, idle, idle_after, reps, spent) -> Row:
    small_cpu, big_cpu = median(results[10]), median(results[big])
    ratio = big_cpu / small_cpu
    idle_big = max(idle[big], idle_after)
    return Row(
        "20",
        f"server CPU while two builds run: {big:,} environments vs 10",
        f"{big:,} envs: {big_cpu:.1%} of a core (idle {idle_big:.1%})",
        f"10 envs: {small_cpu:.1%} of a core (idle {idle[10]:.1%})",
        f"{ratio:.2f}×",
        "≤ 1.2× the CPU with 10; idle < 2% of a core",
        ratio <= 1.2 and idle_big < 0.02,
        [
            f"median of {reps} alternating windows of {WINDOW_S:g} s on each server, two "
            "builds (synth-199 + ipykernel) kept running through the REST API; CPU of the "
            "server process only (its build workers are other processes); windows: "
            + "; ".join(
                f"{n} envs " + ", ".join(f"{c:.1%}" for c in r) for n, r in results.items()
            ),
            f"idle: {IDLE_S:g} s after {SETTLE_S:g} s of calm, before the builds "
            f"({idle[big]:.1%}) and after them ({idle_after:.1%}, quiet environments "
            "still being looked at in slices); the retention pass (every 600 s by default, "
            "its own cost) is off in both servers",
            "replicas: a copy of one real environment's metadata + a prefix of hard links to "
            "its conda-meta records, half local, half shared; each has a kernelspec",
            f"py-spy of each idle server over {IDLE_S * 3:g} s (profiles/idle-N.py-spy.txt): "
            + "; ".join(f"{n} envs: {v}" for n, v in spent.items())
            + f". What grows with the count is the watcher's quiet slices: each round stats "
            f"1/{QUIET_ROUNDS} of the environments (3 stat calls each), so that a change made "
            "by another process (the CLI, a teammate's server) is seen within "
            f"{QUIET_ROUNDS} rounds (30 s) with no central service; c.EnvManager."
            "watch_quiet_rounds trades that bound for CPU",
        ],
    )


def _row21(big, ours, stock, floor_t, core_t, body, floor_size, requests) -> Row:
    p95, stock_p95 = pct(ours, 95), pct(stock, 95)
    return Row(
        "21",
        f"GET /api/kernelspecs with {big:,} environments (one kernelspec each)",
        f"p50 {ms(median(ours))} / p95 {ms(p95)}",
        f"jupyter_server's manager: p50 {ms(median(stock))} / p95 {ms(stock_p95)}; "
        f"floor (read + parse + encode): {ms(median(floor_t))}",
        f"{stock_p95 / p95:.1f}× faster (p95); {median(ours) / median(floor_t):.1f}× the floor",
        "p95 < 200 ms",
        p95 < 0.2,
        [
            f"{requests} requests each, alternating; response {body / 1e6:.1f} MB "
            f"(the floor's payload {floor_size / 1e6:.1f} MB, without resources)",
            "the stock manager is a third server (cache_kernelspecs = False, no watcher) on "
            "the same kernelspec folder",
            f"the server's own work per request (the caching manager's scan, two stat calls "
            f"per kernelspec, and its encoded body; in this process, no HTTP): p50 "
            f"{ms(median(core_t))}, p95 {ms(pct(core_t, 95))}; the rest is sending the body "
            "and the client reading it, on a shared 2-core machine",
        ],
    )
