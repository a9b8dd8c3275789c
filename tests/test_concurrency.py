"""Three real Jupyter servers on one shared store, at once: builds, copies, cancels, deletes.

Each server has its own HOME, Jupyter directories and local store, and the same shared root
(as three users of a team would; one Unix user here). Three clients hit them with random
requests on the same few shared environments for a bounded time (CONCURRENCY_SECONDS, default
60), then everything settles and the suite checks: no 5xx and no request timed out; nothing
left queued or running; no deleted environment came back (nothing unmanaged appears in the
shared store); a version number is given once per environment; and the three servers' listings
agree with each other and with what is on disk. Figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from killloop import Server, wait_for, workers
from test_shared_store import ALICE, BOB, CAROL, needs_users, team, user_process  # noqa: F401

from jupyter_env_manager.core.store import LIVE, Store

NAMES = ["s0", "s1", "s2"]


def local_root(env: dict[str, str]) -> Path:
    """A server's local store: set in its config (one user), else ~/.conda/envs (users)."""
    config = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    settings = json.loads(config.read_text()).get("EnvManager", {})
    return Path(settings.get("local_root") or Path(env["HOME"]) / ".conda" / "envs")


def server_env(base: Path, settings: dict, shared: Path, i: int) -> dict[str, str]:
    home = base / f"user{i}"
    config = home / "config"
    config.mkdir(parents=True)
    mine = dict(settings, local_root=str(home / "envs"), shared_root=str(shared))
    mine.update(max_concurrent_builds=2, watch_interval_s=0.5)
    (config / "jupyter_server_config.json").write_text(json.dumps({"EnvManager": mine}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    env.pop("PYTHONPATH", None)
    return env


class Client(threading.Thread):
    def __init__(self, server: Server, index: int, seed: int, until: float, log: list):
        super().__init__(daemon=True)
        self.server, self.index, self.until, self.log = server, index, until, log
        self.rng = random.Random(seed * 10 + index)
        self.copies = 0

    def request(self, op: str, name: str, method: str, path: str, body=None):
        start = time.monotonic()
        try:
            status, data = self.server.call(method, path, body, timeout=60)
        except TimeoutError:
            status, data = 599, {"message": "timed out"}
        except OSError as err:
            status, data = 598, {"message": str(err)}
        self.log.append((op, name, status, data, start, time.monotonic(), self.index))
        return status, data

    def run(self) -> None:
        base = "env-manager/environments"
        while time.monotonic() < self.until:
            name = self.rng.choice(NAMES)
            op = self.rng.choices(
                ["create", "build", "cancel", "delete", "copy", "list", "get"],
                weights=[3, 4, 2, 2, 1, 2, 2],
            )[0]
            if op == "create":
                body = {"scope": "shared", "name": name, "conda": ["alpha"]}
                self.request(op, name, "POST", base, body)
            elif op == "build":
                self.request(op, name, "POST", f"{base}/shared/{name}/builds", {})
            elif op == "cancel":
                status, env = self.server.call("GET", f"{base}/shared/{name}")
                latest = (env or {}).get("latest_build") if status == 200 else None
                if latest:
                    path = f"{base}/shared/{name}/builds/{latest['version']}"
                    self.request(op, name, "DELETE", path)
            elif op == "delete":
                self.request(op, name, "DELETE", f"{base}/shared/{name}")
            elif op == "copy":
                self.copies += 1
                body = {"to": "local", "name": f"cp{self.index}-{self.copies}"}
                self.request(op, name, "POST", f"{base}/shared/{name}/copy", body)
            elif op == "list":
                self.request(op, name, "GET", f"{base}?scope=shared")
            else:
                self.request(op, name, "GET", f"{base}/shared/{name}")
            time.sleep(self.rng.uniform(0.02, 0.3))


def server_errors(outputs: list[str], faults: list) -> str:
    """The server log's lines from each fault's error reference on (its traceback)."""
    found = []
    for op, name, _status, data, *_rest, index in faults[:3]:
        message = (data or {}).get("message", "")
        ref = message.split("reference ")[-1].split(":")[0] if "reference " in message else None
        lines = outputs[index].splitlines()
        at = next((i for i, line in enumerate(lines) if ref and ref in line), None)
        found.append("\n".join(lines[at : at + 40]) if at is not None else f"{op} {name}: no log")
    return "\n\n".join(found)


def settled(servers: list[Server], stores: list[Store]) -> bool:
    for store in stores:
        for name in store.managed_names():
            for v in store.versions(name):
                try:
                    if store.read_build(name, v).status in LIVE:
                        return False
                except Exception:
                    return False
    for server in servers:
        status, body = server.call("GET", "env-manager/environments")
        if status != 200 or any(e["status"] == "building" for e in body["environments"]):
            return False
    return True


def test_three_servers_one_shared_store(tmp_path, envmgr_settings):
    """One Unix user, three homes."""
    shared = tmp_path / "team-store"
    shared.mkdir()
    envs = [server_env(tmp_path, envmgr_settings, shared, i) for i in range(3)]
    run_three_servers(shared, [{"env": env, "cwd": env["HOME"]} for env in envs])


@needs_users
def test_three_users_one_shared_store(team):  # noqa: F811
    """Three real Unix users (umask 077): alice and bob in the store's group, carol outside it
    (her changes get 403: never a 5xx)."""
    run_three_servers(team["shared"], [user_process(team, u) for u in (ALICE, BOB, CAROL)])


def run_three_servers(shared: Path, popens: list[dict]) -> None:
    seconds = float(os.environ.get("CONCURRENCY_SECONDS", "60"))
    seed = int(os.environ.get("CONCURRENCY_SEED", str(int(time.time()))))
    envs = [p["env"] for p in popens]
    started = time.monotonic()
    servers = [Server(**p) for p in popens]
    log: list = []
    try:
        until = time.monotonic() + seconds
        clients = [Client(s, i, seed, until, log) for i, s in enumerate(servers)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(seconds + 120)
            assert not c.is_alive(), "a client is stuck on a request"
        stores = [Store(shared, "shared")] + [Store(local_root(env), "local") for env in envs]
        wait_for(lambda: settled(servers, stores), 240, "every build to end", every=0.5)
        final_listings = [
            s.call("GET", "env-manager/environments?scope=shared")[1]["environments"]
            for s in servers
        ]
    finally:
        outputs = [s.output() for s in servers]
        for s in servers:
            s.stop()
    roots = [shared] + [local_root(env) for env in envs]
    for root in roots:
        wait_for(lambda root=root: not workers(root), 60, "the workers to end")
    elapsed = time.monotonic() - started

    statuses = Counter(entry[2] for entry in log)
    by_op = Counter((entry[0], entry[2]) for entry in log)
    faults = [entry for entry in log if entry[2] >= 500]
    assert faults == [], (faults[:5], server_errors(outputs, faults))

    # Nothing left queued or running; views agree with each other and with the disk.
    store = Store(shared, "shared")
    on_disk = {}
    for name in store.managed_names():
        latest = store.latest_build(name)
        assert latest is None or latest.status not in LIVE, (name, latest)
        on_disk[name] = (store.active_version(name), latest.status if latest else None)
        ids = [store.read_build(name, v).id for v in store.versions(name)]
        assert len(ids) == len(set(ids)), (name, ids)
        for v in store.versions(name):
            assert store.read_build(name, v).version == v
    assert store.unmanaged_names() == [], "a deleted environment came back as a bare prefix"
    for listing in final_listings:
        seen = {e["name"]: (e["version"], (e["latest_build"] or {}).get("status")) for e in listing}
        assert seen == on_disk, (seen, on_disk)
    for local in roots[1:]:
        local_store = Store(local, "local")
        for name in local_store.managed_names():
            latest = local_store.latest_build(name)
            assert latest is None or latest.status not in LIVE, (name, latest)
        assert local_store.unmanaged_names() == []

    # No resurrection: an environment on disk was created after its last successful delete.
    for name in NAMES:
        deletes = [e for e in log if e[1] == name and e[0] == "delete" and e[2] == 204]
        creates = [e for e in log if e[1] == name and e[0] == "create" and e[2] == 201]
        if name in on_disk and deletes:
            last_delete = max(d[4] for d in deletes)
            assert any(c[5] > last_delete for c in creates), f"{name} came back after a delete"
        if name not in on_disk and creates:
            last_create = max(c[4] for c in creates)
            assert any(d[5] > last_create for d in deletes), f"{name} vanished without a delete"

    # A version number is given once per environment (between two deletes of it).
    builds = sorted((e for e in log if e[0] == "build" and e[2] == 202), key=lambda e: e[5])
    for a_i, a in enumerate(builds):
        for b in builds[a_i + 1 :]:
            if (a[1], a[3]["build"]["version"]) != (b[1], b[3]["build"]["version"]):
                continue
            between = [
                d
                for d in log
                if d[0] == "delete" and d[1] == a[1] and d[2] == 204 and a[4] < d[5] and d[4] < b[5]
            ]
            assert between, f"version {a[3]['build']['version']} of {a[1]} was given twice"

    print(
        f"\nconcurrency: seed {seed}, 3 servers, {len(log)} requests in {seconds:.0f} s "
        f"(total {elapsed:.0f} s with start and settle); "
        f"statuses {dict(sorted(statuses.items()))}; "
        f"0 faults (5xx or timeouts); final shared store {on_disk}"
    )
    print(
        "concurrency: by operation/status "
        + ", ".join(f"{op} {st}: {n}" for (op, st), n in sorted(by_op.items()))
    )
    print(
        "concurrency: builds accepted "
        f"{by_op[('build', 202)]}, copies {by_op[('copy', 202)]}, cancels "
        f"{by_op[('cancel', 200)]}, deletes {by_op[('delete', 204)]}",
        file=sys.stderr,
    )
