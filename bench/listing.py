"""Rows 1 and 2: ``GET environments`` of a real server over 10 ... 3,000 environments.

One real environment of ~50 packages is built through the service; the listed environments are
faithful replicas of it: the prefix hard-linked with ``cp -al``, the metadata directory copied
with the name inside ``env.json`` changed. Half of them go to the local store, half to the
shared one.

Row 1 is the first request after a server start (the headline: what a user who opens the
panel right after a restart waits for); row 2 the warm requests, p50/p95, at every scale, and
the response's size raw and gzipped. Requests send ``Accept-Encoding: gzip`` as browsers do.

Baselines, measured in this process interleaved with the requests (the real floor, never a
scan a listing does not need):

- *stat floor*: ``stat`` of what a listing must check to know nothing changed (each
  environment's metadata directory and ``conda-meta``, the kernelspec directory's names) +
  ``json.dumps`` of the same payload;
- *read floor*: reading what a view is made of when nothing is known (``env.json``,
  ``state.json``, the latest ``build.json``, the names in ``conda-meta``) + ``json.dumps``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import RUN, Fixture, Row, Server, build_env, median, ms, pct, run

SOURCE = "src50"
PATH = "env-manager/environments"
SCOPES = ("local", "shared")
GZIP = {"Accept-Encoding": "gzip"}


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


def source_service(fx: Fixture, log):
    """The service that built the replicas' source (built once per run)."""
    # Listing reads conda-meta's file names and our metadata, never the rest of a prefix: the
    # source has no kernel package (python + 49 packages), so 3,000 replicas stay cheap.
    service = fx.service(kernel_packages=[])
    if not service.local.exists(SOURCE):
        built = build_env(service, "local", SOURCE, {"conda": ["synth-048"]})
        log(f"listing: source environment {SOURCE} built in {ms(built.seconds)}")
    return service


def stat_floor(replicas: Replicas, kernels: Path, payload: dict) -> float:
    started = time.perf_counter()
    for store in replicas.stores:
        envs = os.path.join(store.meta, "envs")
        for name in os.listdir(envs):
            os.stat(os.path.join(envs, name))
            os.stat(os.path.join(store.root, name, "conda-meta"))
    os.listdir(kernels)
    json.dumps(payload)
    return time.perf_counter() - started


def read_floor(replicas: Replicas, payload: dict) -> float:
    started = time.perf_counter()
    for store in replicas.stores:
        envs = os.path.join(store.meta, "envs")
        for name in os.listdir(envs):
            for file in ("env.json", "state.json", os.path.join("builds", "1", "build.json")):
                with open(os.path.join(envs, name, file)) as f:
                    json.load(f)
            os.listdir(os.path.join(store.root, name, "conda-meta"))
    json.dumps(payload)
    return time.perf_counter() - started


def _server(fx: Fixture, base: Path, label: str) -> Server:
    return Server(
        label,
        fx.settings(local_root=str(base / "local"), shared_root=str(base / "shared")),
        data_dir=base / "data",
        config_dir=base / "config",
    )


def _first_get(server: Server) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, body = server.request("GET", PATH, headers=GZIP)
    if status != 200:
        raise RuntimeError(f"GET {PATH} -> {status}")
    return time.perf_counter() - started, body


def wait_ready(server: Server, total: int, disk: bool = True) -> list[dict]:
    """Until every environment is listed ready with its kernel (the start-up sync is done)
    and, with ``disk``, its disk use (the background pass is done)."""
    deadline = time.monotonic() + 600
    while True:
        envs = server.json("GET", PATH)["environments"]
        ready = [e for e in envs if e["status"] == "ready" and e["managed"]]
        kernels = [e for e in envs if e["kernel"] and e["kernel"]["active"]]
        sized = [e for e in envs if e["disk_bytes"] is not None or not disk]
        if len(kernels) == len(ready) == len(sized) == total:
            return envs
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"listing: expected {total} ready environments with kernels and disk use, got "
                f"{len(ready)} ready, {len(kernels)} with kernels, {len(sized)} with disk use"
            )
        time.sleep(0.2)


# The panel's work on a list it has not seen: parse it, give each action its state (as
# src/api.ts expandActions does for the compact list), index it by name and sort it (as the
# model does). Run by node, the browser's engine: the median of 15 runs in ms.
PARSE_JS = r"""
const fs = require('fs');
const text = fs.readFileSync(process.argv[2], 'utf8');
const times = [];
for (let i = 0; i < 15; i++) {
  const started = process.hrtime.bigint();
  const list = JSON.parse(text);
  const denied = (list.reasons || []).map(reason => Object.freeze({ allowed: false, reason }));
  const allowed = Object.freeze({ allowed: true, reason: null });
  for (const env of list.environments) {
    const actions = env.actions;
    for (const action in actions) {
      const state = actions[action];
      if (state === null) actions[action] = allowed;
      else if (typeof state === 'number') actions[action] = denied[state];
    }
  }
  const byName = new Map(list.environments.map(env => [env.name, env]));
  [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  times.push(Number(process.hrtime.bigint() - started) / 1e6);
}
times.sort((a, b) => a - b);
console.log(times[7]);
"""


def panel_list(server: Server, full: bytes) -> dict:
    """Row 2b: the panel's two requests (``view=compact``, one per store) against the full list
    of both stores: their bytes, raw and gzipped, and node's time to parse and prepare them."""
    compact = [server.request("GET", f"{PATH}?scope={s}&view=compact")[1] for s in SCOPES]
    zipped = [
        server.request("GET", f"{PATH}?scope={s}&view=compact", headers=GZIP)[1] for s in SCOPES
    ]
    out = {"raw": sum(map(len, compact)), "gzip": sum(map(len, zipped)), "parse": None}
    node = shutil.which("node")
    if node is None:
        out["why"] = "node not found: no parse times"
        return out
    work = RUN / "listing" / "panel"
    work.mkdir(parents=True, exist_ok=True)
    script = work / "parse.js"
    script.write_text(PARSE_JS)

    def parse(body: bytes, label: str) -> float:
        path = work / f"{label}.json"
        path.write_bytes(body)
        proc = subprocess.run([node, str(script), str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"node {script.name} {path.name}: {proc.stderr[-500:]}")
        return float(proc.stdout) / 1000

    out["parse"] = sum(parse(body, f"compact-{s}") for s, body in zip(SCOPES, compact, strict=True))
    out["parse_full"] = parse(full, "full")
    return out


def _wait_saved(server: Server, cache_dir: Path, total: int) -> None:
    """Until the listing cache holds all ``total`` environments with their kernels and disk
    use (a restart then finds everything in it). Its content, not its mtime: the last save
    may have come before the request that saw everything ready. Asks for the list meanwhile,
    as a panel does: an environment changed less than two seconds before a listing is not
    trusted (nor saved) until a later listing reads it again."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        server.request("GET", PATH)
        for cache in cache_dir.glob("listing-*.jsonl"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # (after the header and the reasons' line: see core/listing.py)
                rows = [json.loads(line.split("\t", 1)[0]) for line in cache.open()][2:]
                complete = [r for r in rows if r[5] and r[5][0] and r[5][1] is not None]
                if len(complete) == total:
                    return
        time.sleep(0.5)
    raise RuntimeError("listing: the listing cache was not written")


def measure(fx: Fixture, scales: list[int], requests: dict[int, int], restarts: int, log):
    service = source_service(fx, log)
    base = RUN / "listing"
    replicas = Replicas(service, base)
    kernels = base / "data" / "kernels"
    cache_dir = base / "data" / "env_manager"
    results: dict[int, dict] = {}
    for total in scales:
        started = time.perf_counter()
        replicas.grow_to(total // 2)
        log(f"listing: {total} environments made in {time.perf_counter() - started:.1f}s")
        shutil.rmtree(cache_dir, ignore_errors=True)  # no listing cache, no disk use known
        r: dict = {}
        with _server(fx, base, f"listing-{total}") as server:
            r["first"], _ = _first_get(server)  # the first start ever: every record is read
            r["first_answering"] = server.answering_s
            wait_ready(server, total)
            _wait_saved(server, cache_dir, total)
        colds, answering = [], []
        for i in range(restarts):
            with _server(fx, base, f"listing-{total}-restart{i}") as server:
                cold, body = _first_get(server)
                colds.append(cold)
                answering.append(server.answering_s)
                if i < restarts - 1:
                    continue
                # Warm: this restarted server once its start-up kernel sync is done.
                envs = wait_ready(server, total)
                payload = {"environments": envs}
                full = server.request("GET", PATH)[1]
                r["raw"] = len(full)
                r["gzip"] = len(server.request("GET", PATH, headers=GZIP)[1])
                r["panel"] = panel_list(server, full)
                server.timed_gets(PATH, 3, GZIP)  # warm-up
                times, floors = [], []
                for _ in range(requests[total]):  # interleaved, so drift hits both alike
                    times += server.timed_gets(PATH, 1, GZIP)
                    floors.append(stat_floor(replicas, kernels, payload))
                reads = [read_floor(replicas, payload) for _ in range(3)]
        r.update(
            p50=median(times),
            p95=pct(times, 95),
            floor=median(floors),
            read=median(reads),
            cold=median(colds),
            colds=colds,
            answering=answering,
            n=len(times),
        )
        results[total] = r
        log(
            f"listing: {total} envs: first start {ms(r['first'])}, restart "
            f"{', '.join(ms(c) for c in colds)}; warm p50 {ms(r['p50'])}, p95 {ms(r['p95'])}; "
            f"stat floor {ms(r['floor'])}, read floor {ms(r['read'])}; "
            f"{r['raw'] / 1e6:.2f} MB raw, {r['gzip'] / 1e3:.0f} kB gzip"
        )
    return _rows(results)


def _rows(results: dict[int, dict]) -> list[Row]:
    scales = sorted(results)
    top = scales[-1]
    r = results[top]
    rows = [
        Row(
            "1",
            f"listing cold: first GET environments after a server start, {top:,} envs",
            f"{ms(r['cold'])} after a restart (median of {len(r['colds'])}); "
            f"{ms(r['first'])} at the first start ever",
            f"stat floor {ms(r['floor'])}; read floor {ms(r['read'])}",
            f"{r['cold'] / r['floor']:.1f}× the stat floor; first start "
            f"{r['first'] / r['read']:.1f}× the read floor",
            "< 300 ms after a restart",
            r["cold"] < 0.3,
            [
                f"{n}: restart {', '.join(ms(c) for c in results[n]['colds'])}, first start "
                f"{ms(results[n]['first'])} (read floor {ms(results[n]['read'])})"
                for n in scales
            ]
            + [
                "the first request comes as soon as the server answers: the extension makes "
                "the lists (and their gzip) in a thread begun when it is loaded, while the "
                "server loads the others; then the watcher's first scan, the recovery and the "
                "kernel sync run in threads of the same process (they wait while a listing "
                "runs)",
                f"{top}: the restarted servers answered "
                f"{', '.join(ms(a) for a in r['answering'])} after they were started (polled "
                "every 100 ms), the first start ever "
                f"{ms(r['first_answering'])}",
                "restart: the listing cache of the previous run (data dir, "
                "env_manager/listing-*.jsonl) is checked by stat, not re-read",
            ],
        ),
        Row(
            "2",
            "listing warm: GET environments (gzip) at "
            + ", ".join(f"{n:,}" for n in scales)
            + " envs",
            ", ".join(f"{n}: {ms(results[n]['p50'])}/{ms(results[n]['p95'])}" for n in scales)
            + " (p50/p95)",
            "stat floor: " + ", ".join(ms(results[n]["floor"]) for n in scales),
            ", ".join(f"{results[n]['p50'] / results[n]['floor']:.1f}×" for n in scales)
            + " (p50 / floor)",
            f"p95 < 100 ms at {top:,}",
            r["p95"] < 0.1,
            [
                f"{n}: {results[n]['raw'] / 1e6:.2f} MB raw, {results[n]['gzip'] / 1e3:.0f} kB "
                f"gzip; {results[n]['n']} requests"
                for n in scales
            ]
            + [
                "replicas: cp -al of one real 50-package env (python + 49 synthetic, no "
                "ipykernel) + its metadata, half in each store; warm = the last restarted "
                "server, once its start-up kernel sync is done",
                "every request is a full 200 (no If-None-Match): what a client without the "
                "list gets; a 304 to one that has it sends no body",
            ],
        ),
    ]
    p = r["panel"]
    rows.append(
        Row(
            "2b",
            f"the panel's list at {top:,} envs: GET environments?view=compact, one per store",
            f"{p['raw'] / 1e6:.2f} MB raw, {p['gzip'] / 1e3:.0f} kB gzip"
            + (f"; parsed and prepared in {ms(p['parse'])}" if p["parse"] is not None else ""),
            f"the full list: {r['raw'] / 1e6:.2f} MB raw, {r['gzip'] / 1e3:.0f} kB gzip"
            + (f"; {ms(p['parse_full'])}" if p["parse"] is not None else ""),
            f"{p['raw'] / r['raw']:.2f}× the bytes"
            + (f", {p['parse'] / p['parse_full']:.2f}× the time" if p["parse"] is not None else ""),
            "parsed and prepared in < 50 ms (a task's budget: the panel stays responsive), "
            "in fewer bytes than the full list",
            None if p["parse"] is None else p["parse"] < 0.05 and p["raw"] < r["raw"],
            [
                "what the panel asks for: each action null (allowed) or the number of its "
                "reason, the reasons once per response (the full list repeats them in every "
                "environment); the panel gives each action its state as the full list has it",
                "time: node (the browser's engine), median of 15: JSON.parse, each action's "
                "state, a Map by name and the sort by name, as src/api.ts and src/model.ts do",
            ]
            + ([p["why"]] if "why" in p else []),
        )
    )
    return rows
