"""Shared machinery of the benchmarks: an isolated work tree, services, a real server, timing.

Everything a run writes lives under ``bench/.work/run`` (wiped at the start of each run) and
``bench/.work/cache`` (the collected host packages, kept between runs). :func:`isolate` points
HOME, the Jupyter directories, XDG caches and TMPDIR there before anything else is imported.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
RUN = WORK / "run"
PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"
DROPPED_VARS = ("JUPYTER_PATH", "CONDARC", "CONDA_PREFIX", "JUPYTER_ENV_MANAGER_SHARED_ROOT")


def _installed() -> bool:
    try:
        metadata.distribution("jupyter_env_manager")
    except metadata.PackageNotFoundError:
        return False
    return True


def isolate() -> None:
    """Wipe the run tree and point every per-user location into it (this process + children)."""
    if RUN.exists():
        unmount_under(RUN)  # a run that was interrupted may have left a mount (rows 4c, 5b)
        shutil.rmtree(RUN)
    for d in ("home", "config", "data", "runtime", "tmp", "logs", "notebooks"):
        (RUN / d).mkdir(parents=True)
    env = os.environ
    env.update(
        {
            "HOME": str(RUN / "home"),
            "JUPYTER_CONFIG_DIR": str(RUN / "config"),
            "JUPYTER_DATA_DIR": str(RUN / "data"),
            "JUPYTER_RUNTIME_DIR": str(RUN / "runtime"),
            "IPYTHONDIR": str(RUN / "home" / ".ipython"),
            "XDG_CACHE_HOME": str(RUN / "home" / ".cache"),
            "XDG_CONFIG_HOME": str(RUN / "home" / ".config"),
            "XDG_DATA_HOME": str(RUN / "home" / ".local" / "share"),
            "TMPDIR": str(RUN / "tmp"),
            "JUPYTER_ENV_MANAGER_TESTING_CACHE": str(WORK / "cache"),
        }
    )
    for name in DROPPED_VARS:
        env.pop(name, None)
    for name in list(env):
        if name.startswith(("PIP_", "UV_")):
            env.pop(name)
    # Worker subprocesses must import the package; a PYTHONPATH would also leak into the
    # environments' interpreters, so set it only when the package is not installed.
    if _installed():
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = str(REPO)
        sys.path.insert(0, str(REPO))
    import tempfile

    tempfile.tempdir = str(RUN / "tmp")


def unmount_under(root: Path) -> None:
    """Unmount every filesystem mounted below root (lazily, so a busy one goes too)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    inside = str(root.resolve()) + "/"
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[1].startswith(inside):
            subprocess.run(["umount", "-l", fields[1]], capture_output=True, check=False)


def cleanup() -> None:
    """Remove everything a run made except its logs."""
    for entry in RUN.iterdir():
        if entry.name != "logs":
            rmtree(entry) if entry.is_dir() else entry.unlink()


# -- statistics ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def run(argv: list[str], **kwargs) -> float:
    """Run argv (no shell), raise on failure, return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def parse_stamp(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# -- the extension's core, in this process -----------------------------------------------------


@dataclass
class Fixture:
    """The channel, wheelhouse, package cache and stores every benchmark shares."""

    channel: str
    wheelhouse: Path
    pkgs: Path
    local_root: Path
    shared_root: Path

    def settings(self, **overrides: Any) -> dict[str, Any]:
        base = {
            "local_root": str(self.local_root),
            "shared_root": str(self.shared_root),
            "channels": [self.channel],
            "pkgs_dir": str(self.pkgs),
            "pip_find_links": [str(self.wheelhouse)],
            "pip_no_index": True,
            "default_python": PY_XY,
        }
        base.update(overrides)
        return base

    def service(self, *, like_for_like_priority: bool = False, **overrides: Any):
        """An EnvService in this process. ``like_for_like_priority``: build workers keep this
        process's CPU priority (as cp and pip do), instead of the default lower one."""
        from traitlets.config import Config

        from jupyter_env_manager.config import EnvManager
        from jupyter_env_manager.core.service import EnvService

        if like_for_like_priority and "build_niceness" in EnvManager.class_trait_names():
            overrides["build_niceness"] = 0
        settings = EnvManager(config=Config({"EnvManager": self.settings(**overrides)}))
        return EnvService(settings)


def make_fixture(n_synthetic: int, files: int, n_wheels: int) -> Fixture:
    from jupyter_env_manager.testing import build_channel, build_wheelhouse, synthetic

    # ipykernel's closure without byte-code, as conda-forge's noarch packages: a prefix's first
    # import compiles it, unless a build kept what an earlier one compiled (core/bytecode.py)
    channel = build_channel(RUN / "channel", extra=synthetic(n_synthetic, files), bytecode=False)
    wheelhouse = build_wheelhouse(RUN / "wheelhouse", n_synthetic=n_wheels)
    return Fixture(
        channel, wheelhouse, RUN / "pkgs", RUN / "stores" / "local", RUN / "stores" / "shared"
    )


@dataclass
class Built:
    seconds: float  # create (if asked) + prepare + run_foreground, as the caller saw it
    build: Any  # the finished Build
    returned_wall: float  # time.time() when run_foreground returned
    returned_perf: float  # time.perf_counter() then


def build_env(service, scope: str, name: str, create: dict[str, Any] | None = None) -> Built:
    """(Create and) build an environment in the foreground; raise unless it succeeded."""
    from jupyter_env_manager.core.runner import run_foreground

    started = time.perf_counter()
    if create is not None:
        service.envs.create({"scope": scope, "name": name, **create})
    build = service.builds.prepare(scope, name)
    result = run_foreground(service, scope, name, build)
    returned_perf, returned_wall = time.perf_counter(), time.time()
    if result.status != "succeeded":
        raise RuntimeError(f"build of {scope}/{name} {result.status}: {result.error}")
    finished = service.builds.get(scope, name, build.version)
    return Built(returned_perf - started, finished, returned_wall, returned_perf)


def cli_build(service, scope: str, name: str, create: dict[str, Any], done: list[float]) -> None:
    """The same create + build as ``jupyter envmgr create --build`` runs it (a worker started
    for it), for the notes of rows measured through a server's queue; deleted after."""
    done.append(build_env(service, scope, name, create).seconds)
    service.envs.delete(scope, name)


QUEUED = (
    "ours through a server's build queue, its spare worker ready (core/spare.py), as the "
    "panel's and REST's builds run, until the build's finished event (what the panel waits for)"
)
CLIENTS_TOLD = "clients told"  # a queued build's tail: its finished event emitted


def breakdown(built: Built, tail: str = "run_foreground returned") -> dict[str, float]:
    """Where a foreground build's time went: worker start, each phase, the tail after it."""
    b = built.build
    out = {"queue→worker running": parse_stamp(b.started_at) - parse_stamp(b.created_at)}
    if b.phases:
        out["running→first phase"] = parse_stamp(b.phases[0]["started_at"]) - parse_stamp(
            b.started_at
        )
    for phase in b.phases:
        if phase.get("finished_at"):
            start, end = parse_stamp(phase["started_at"]), parse_stamp(phase["finished_at"])
            out[phase["name"]] = end - start
    out[f"finished→{tail}"] = built.returned_wall - parse_stamp(b.finished_at)
    return out


def summarize(breakdowns: list[dict[str, float]]) -> str:
    keys = list(dict.fromkeys(k for b in breakdowns for k in b))
    parts = []
    for key in keys:
        values = [b[key] for b in breakdowns if key in b]
        parts.append(f"{key} {median(values) * 1000:.0f}")
    return "median ms: " + ", ".join(parts)


def count_files(path: Path) -> int:
    return sum(len(files) for _dirs, _sub, files in os.walk(path))


# -- a real Jupyter server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """``python -m jupyter_server`` with the extension, its own config and data directories."""

    name: str
    env_manager: dict[str, Any]
    data_dir: Path
    config_dir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    proc: subprocess.Popen | None = None
    answering_s: float = 0.0  # from its start until it answered (polled every 100 ms)
    _conn: http.client.HTTPConnection | None = None

    def start(self, timeout: float = 120) -> Server:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "ServerApp": {"jpserver_extensions": {"jupyter_env_manager": True}},
            "EnvManager": self.env_manager,
        }
        (self.config_dir / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "JUPYTER_CONFIG_DIR": str(self.config_dir),
                "JUPYTER_DATA_DIR": str(self.data_dir),
                "JUPYTER_RUNTIME_DIR": str(self.data_dir / "runtime"),
            }
        )
        argv = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.token={self.token}",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={RUN / 'notebooks'}",
        ]  # the extension is enabled in the config file written above
        log = open(RUN / "logs" / f"server-{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        spawned = time.monotonic()
        deadline = spawned + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited {self.proc.returncode}; see logs/")
            try:
                status, _ = self.request("GET", "env-manager/info")
                if status == 200:
                    self.answering_s = time.monotonic() - spawned
                    return self
            except OSError:
                self._conn = None
            time.sleep(0.1)
        raise RuntimeError(f"server {self.name} did not answer within {timeout}s")

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request on a kept-alive connection (as a browser does)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"token {self.token}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, "/" + path, body=data, headers=headers)
            response = self._conn.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            self._conn.close()
            self._conn = None
            raise

    def json(self, method: str, path: str, body: Any = None, expect: Sequence[int] = (200,)) -> Any:
        status, data = self.request(method, path, body)
        if status not in expect:
            raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
        return json.loads(data) if data else None

    def timed_gets(self, path: str, n: int, headers: dict[str, str] | None = None) -> list[float]:
        out = []
        for _ in range(n):
            started = time.perf_counter()
            status, _ = self.request("GET", path, headers=headers)
            out.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path} -> {status}")
        return out

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- a result row ------------------------------------------------------------------------------


@dataclass
class Row:
    number: str
    measure: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: informational
    notes: list[str] = field(default_factory=list)
