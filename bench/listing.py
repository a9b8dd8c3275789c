"""Rows 1 and 2: ``GET environments`` of a real server over 10 ... 1,000 environments.

One real environment of ~50 packages is built through the service; the listed environments are
faithful replicas of it: the prefix hard-linked with ``cp -al``, the metadata directory copied
with the name inside ``env.json`` changed. Half of them go to the local store, half to the
shared one. The baseline is a bare Python scan of the same ``conda-meta`` directories.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import RUN, Fixture, Row, Server, build_env, median, ms, pct, run

SOURCE = "src50"


def bare_scan(roots: list[Path]) -> int:
    """What listing cannot beat: find the prefixes and count their conda-meta/*.json."""
    records = 0
    for root in roots:
        with os.scandir(root) as entries:
            prefixes = [e.path for e in entries if e.name[0] != "." and e.is_dir()]
        for prefix in prefixes:
            try:
                with os.scandir(os.path.join(prefix, "conda-meta")) as meta:
                    records += sum(1 for e in meta if e.name.endswith(".json"))
            except FileNotFoundError:
                pass
    return records


def time_scan(roots: list[Path], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        bare_scan(roots)
        times.append(time.perf_counter() - started)
    return median(times)


class Replicas:
    """Grows a local and a shared store of replicas of one built environment."""

    def __init__(self, service, base: Path):
        from jupyter_env_manager.core.store import Store

        self.source_prefix = service.local.active_prefix(SOURCE)
        self.source_meta = service.local.env_dir(SOURCE)
        self.stores = [Store(base / "local", "local"), Store(base / "shared", "shared")]
        for store in self.stores:
            store.ensure()
        self.count = 0  # per store

    def grow_to(self, per_store: int) -> None:
        jobs = []
        for store in self.stores:
            for i in range(self.count, per_store):
                jobs.append((store, f"env{i:04d}"))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda job: self._replicate(*job), jobs))
        self.count = max(self.count, per_store)

    def _replicate(self, store, name: str) -> None:
        run(["cp", "-al", "--", str(self.source_prefix), str(store.prefix(name))])
        shutil.copytree(self.source_meta, store.env_dir(name))
        env_json = store.env_dir(name) / "env.json"
        data = json.loads(env_json.read_text())
        data["spec"]["name"] = name
        data["spec"]["display_name"] = name
        env_json.write_text(json.dumps(data, indent=1))

    @property
    def roots(self) -> list[Path]:
        return [s.root for s in self.stores]


def measure(fx: Fixture, scales: list[int], requests: dict[int, int], log) -> list[Row]:
    # Listing reads conda-meta's file names and our metadata, never the rest of a prefix: the
    # source has no kernel package (python + 49 packages), so 1,000 replicas stay cheap.
    service = fx.service(kernel_packages=[])
    built = build_env(service, "local", SOURCE, {"conda": ["synth-048"]})
    n_packages = len(list((service.local.prefix(SOURCE) / "conda-meta").glob("*.json")))
    log(f"listing: source environment {SOURCE} has {n_packages} packages ({ms(built.seconds)})")
    base = RUN / "listing"
    replicas = Replicas(service, base)
    results: dict[int, dict] = {}
    for total in scales:
        started = time.perf_counter()
        replicas.grow_to(total // 2)
        log(f"listing: {total} environments made in {time.perf_counter() - started:.1f}s")
        server = Server(
            f"listing-{total}",
            fx.settings(local_root=str(base / "local"), shared_root=str(base / "shared")),
            data_dir=base / "data",
            config_dir=base / "config",
        )
        with server:
            # The server answers while its start-up kernel sync runs: wait for that (bounded).
            deadline = time.monotonic() + 120
            while True:
                envs = server.json("GET", "env-manager/environments")["environments"]
                ready = [e for e in envs if e["status"] == "ready" and e["managed"]]
                kernels = [e for e in envs if e["kernel"] and e["kernel"]["active"]]
                if len(kernels) == total or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if len(ready) != total or len(kernels) != total:
                raise RuntimeError(
                    f"listing: expected {total} ready environments with kernels, got "
                    f"{len(ready)} ready, {len(kernels)} with kernels"
                )
            packages = "/".join(str(n) for n in sorted({e["packages"] for e in envs}))
            server.timed_gets("env-manager/environments", 3)  # warm-up
            times, scans = [], []
            for _ in range(requests[total]):  # interleaved, so drift hits both alike
                times += server.timed_gets("env-manager/environments", 1)
                scans.append(time_scan(replicas.roots, 1))
        scan = median(scans)
        results[total] = {"p50": median(times), "p95": pct(times, 95), "scan": scan}
        log(
            f"listing: {total} envs ({packages} packages each): p50 {ms(median(times))}, "
            f"p95 {ms(pct(times, 95))}, bare scan {ms(scan)} ({requests[total]} requests)"
        )
        results[total]["core"] = _in_process(fx, base, 9)
    return _rows(results)


def _in_process(fx: Fixture, base: Path, repeats: int) -> tuple[float, float]:
    """The service's list_envs alone (no HTTP, no JSON), for the notes: (cold, warm) medians.

    Cold: a new EnvService each time (the first listing after a server start, or after every
    environment changed); warm: the same service listing again (what a re-listing UI gets).
    """
    old = os.environ["JUPYTER_DATA_DIR"]
    os.environ["JUPYTER_DATA_DIR"] = str(base / "data")
    roots = {"local_root": str(base / "local"), "shared_root": str(base / "shared")}
    try:
        cold, warm = [], []
        for _ in range(repeats):
            service = fx.service(**roots)
            started = time.perf_counter()
            service.envs.list()
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            service.envs.list()
            warm.append(time.perf_counter() - started)
        return median(cold), median(warm)
    finally:
        os.environ["JUPYTER_DATA_DIR"] = old


def _rows(results: dict[int, dict]) -> list[Row]:
    rows = []
    if 200 in results:
        r = results[200]
        ratio = r["p50"] / r["scan"]
        rows.append(
            Row(
                "1",
                "listing: GET environments, 100 local + 100 shared envs of ~50 packages",
                f"p50 {ms(r['p50'])} / p95 {ms(r['p95'])}",
                f"bare scan {ms(r['scan'])}",
                f"{ratio:.1f}× (p95: {r['p95'] / r['scan']:.1f}×)",
                "p95 < 100 ms; ≤ 5× the scan",
                r["p95"] < 0.1 and ratio <= 5,
                [
                    f"list_envs() in-process (no HTTP/JSON): cold {ms(r['core'][0])} "
                    f"({r['core'][0] / r['scan']:.1f}× the scan), warm {ms(r['core'][1])}",
                    "replicas: cp -al of one real 50-package env (python + 49 synthetic, "
                    "no ipykernel: listing never reads beyond conda-meta's names) + its metadata",
                ],
            )
        )
    scales = sorted(results)
    # The bare scan is linear by construction and was sampled interleaved with the requests,
    # so normalising by it cancels the machine's drift between scales.
    steps, linear = [], True
    for a, b in zip(scales, scales[1:], strict=False):
        growth = results[b]["p50"] / results[a]["p50"]
        vs_scan = growth / (results[b]["scan"] / results[a]["scan"])
        steps.append(f"{a}→{b}: ×{growth:.1f} (n ×{b / a:g}; {vs_scan:.2f}× the scan's growth)")
        linear = linear and vs_scan <= 1.25
    rows.append(
        Row(
            "2",
            "listing scale: GET environments at " + ", ".join(f"{n:,}" for n in scales) + " envs",
            ", ".join(f"{n}: {ms(results[n]['p50'])}" for n in scales) + " (p50)",
            "scan: " + ", ".join(f"{ms(results[n]['scan'])}" for n in scales),
            "; ".join(steps),
            "grows linearly or better (each step ≤ 1.25× the bare scan's growth)",
            linear,
            [
                f"{n}: p95 {ms(results[n]['p95'])}, "
                f"list_envs() in-process cold {ms(results[n]['core'][0])}, "
                f"warm {ms(results[n]['core'][1])}, "
                f"{results[n]['p50'] / results[n]['scan']:.1f}× the scan"
                for n in scales
            ],
        )
    )
    return rows
