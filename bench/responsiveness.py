"""Row 8: p99 of ``GET environments`` over 1,000 environments while the server runs two
builds, against the same server idle.

The server lists 1,000 replicas of a real environment (as rows 1 and 2) plus the two
environments it builds. The builds are started through the REST API (the server's own queue
runs them) and restarted whenever one ends; a batch of requests counts only if both builds
were running (their ``build.json`` says so on disk) before and after it. Requests send
``Accept-Encoding: gzip``, as browsers do.
"""

from __future__ import annotations

import time

from common import RUN, Fixture, Row, Server, median, ms, pct
from listing import GZIP, Replicas, source_service, wait_ready

BATCH = 10
PACE_S = 0.05  # one request every 50 ms, so a sample spans whole builds, all their phases
BUSY = ("busy1", "busy2")
ENVS = 1000
INFO = "env-manager/environments"
CONTROL = "api/status"


def _paced(server: Server, n: int) -> tuple[list[float], list[float]]:
    """n ticks of PACE_S: GET info, then GET /api/status (jupyter_server's own, as a control)."""
    info, control = [], []
    for _ in range(n):
        started = time.perf_counter()
        info += server.timed_gets(INFO, 1, GZIP)
        control += server.timed_gets(CONTROL, 1)
        time.sleep(max(0.0, PACE_S - (time.perf_counter() - started)))
    return info, control


def _status(service, name: str) -> str | None:
    build = service.local.latest_build(name)
    return build.status if build else None


def measure(fx: Fixture, n: int, log) -> Row:
    base = RUN / "responsiveness"
    Replicas(source_service(fx, log), base).grow_to(ENVS // 2)
    roots = {"local_root": str(base / "local"), "shared_root": str(base / "shared")}
    service = fx.service(**roots)
    with Server("responsiveness", fx.settings(**roots), base / "data", base / "config") as srv:
        return _measure(service, srv, n, log)


def _measure(service, server: Server, n: int, log) -> Row:
    wait_ready(server, ENVS)  # the start-up kernel sync and disk-use pass are done
    server.timed_gets(INFO, 10, GZIP)  # warm-up
    idle, idle_control = _paced(server, n // 2)
    for name in BUSY:
        server.json(
            "POST",
            "env-manager/environments",
            {"name": name, "conda": ["synth-199"], "build": True},
            expect=(201,),
        )
    busy: list[float] = []
    busy_control: list[float] = []
    builds = len(BUSY)
    discarded = 0
    deadline = time.monotonic() + 600
    while len(busy) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("responsiveness: could not keep two builds running")
        for name in BUSY:
            if _status(service, name) not in ("queued", "running"):
                server.json("POST", f"env-manager/environments/local/{name}/builds", expect=(202,))
                builds += 1
        if not all(_status(service, name) == "running" for name in BUSY):
            time.sleep(0.005)
            continue
        batch, batch_control = _paced(server, BATCH)
        if all(_status(service, name) == "running" for name in BUSY):
            busy += batch
            busy_control += batch_control
        else:
            discarded += 1
    more, more_control = _paced(server, n // 2)
    idle += more
    idle_control += more_control
    for name in BUSY:  # let the last builds end before the server stops
        while _status(service, name) in ("queued", "running"):
            time.sleep(0.1)
        latest = service.local.latest_build(name)
        if latest.status != "succeeded":
            raise RuntimeError(f"responsiveness: build of {name} {latest.status}: {latest.error}")
    packages = len(list((service.local.prefix(BUSY[0]) / "conda-meta").glob("*.json")))
    p99, base = pct(busy, 99), pct(idle, 99)
    log(f"GET environments p99: {ms(p99)} during builds vs {ms(base)} idle ({builds} builds)")
    return Row(
        "8",
        f"responsiveness: GET environments ({ENVS:,} envs) while two builds "
        f"({packages} packages each) run",
        f"p99 {ms(p99)} (p50 {ms(median(busy))}, max {ms(max(busy))})",
        f"idle p99 {ms(base)} (p50 {ms(median(idle))})",
        f"{p99 / base:.1f}×",
        "p99 < 100 ms and ≤ 2× idle",
        p99 < 0.1 and p99 <= 2 * base,
        [
            f"{len(busy)} requests, one per {PACE_S * 1000:.0f} ms, in batches of {BATCH} kept "
            "only while both builds ran "
            f"({discarded} batches discarded); {builds} builds started; "
            f"{len(idle)} idle requests, half before and half after",
            f"control, GET /api/status (jupyter_server itself, same ticks): p99 idle "
            f"{ms(pct(idle_control, 99))}, during builds {ms(pct(busy_control, 99))}",
        ],
    )
