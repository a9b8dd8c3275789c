"""What a build worker is given and what it writes as it goes: the job (``builds/<N>/job.json``),
the build's log (line by line, phases marked) and rattler's progress turned into log lines.

Shared by the doors that queue a build (:mod:`.builds` writes the job) and the worker that runs
it (:mod:`.engine`, :mod:`.worker`); nothing here imports rattler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .diagnose import redact


@dataclass
class BuildJob:
    """Everything a worker needs, written to ``builds/<N>/job.json`` by whoever queues it."""

    scope: str
    root: str
    name: str
    version: int
    kind: str  # build | revert | copy
    spec: dict[str, Any]
    channels: list[str]
    pkgs_dir: str
    kernel_packages: list[str]
    default_python: str
    pip_index_url: str | None = None
    pip_find_links: list[str] = field(default_factory=list)
    pip_no_index: bool = False
    write_kernel: bool = True
    niceness: int = 10
    # revert/copy: the lock to reproduce; build with a base env: the base's lock and spec
    source_build_dir: str | None = None
    base_build_dir: str | None = None
    base_spec: dict[str, Any] | None = None
    # Record ``spec`` as the environment's spec once this build is in use (revert: version N's
    # spec; install/uninstall: the edited spec). A failed build leaves the spec as it was.
    record_spec: bool = False
    # Retention after the build (see :mod:`.retention`)
    keep_versions: int = 3
    kernel_stale_s: float = 86400.0
    pin_keep_s: float = 30 * 86400.0
    # Offline (c.EnvManager.offline or --offline): cached repodata and file:// channels only,
    # packages from the package cache, the pip layer from pip_find_links only.
    offline: bool = False
    # Not start the prefix's python again for a lock verified before, files unchanged
    # (c.EnvManager.verify_once; see :mod:`.verified`).
    verify_once: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildJob:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class BuildLog:
    """The build's log file, written line by line so readers can follow it with offsets."""

    def __init__(self, path: Path, on_phase: Callable[[str], None]):
        self._file = open(path, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self._on_phase = on_phase
        self.phase: str | None = None

    def write(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            try:
                for line in redact(text).rstrip("\n").splitlines() or [""]:
                    self._file.write(f"[{stamp}] {line}\n")
            except OSError:
                pass  # the log is best effort: a full disk must not turn into a second error

    def set_phase(self, phase: str) -> None:
        if phase == self.phase:
            return
        self.phase = phase
        self.write(f"== {phase} ==")
        self._on_phase(phase)

    def close(self) -> None:
        self._file.close()


class Reporter:
    """rattler InstallerReporter: turns download/link progress into phases and log lines."""

    def __init__(self, log: BuildLog):
        self.log = log
        self._names: dict[int, str] = {}
        self._next = 1
        self.linked = 0

    def _token(self, name: str) -> int:
        token = self._next
        self._next += 1
        self._names[token] = name
        return token

    def on_transaction_start(self, total_operations: int) -> None:
        self.log.write(f"{total_operations} packages to install")

    def on_populate_cache_start(self, operation: int, package_name: str) -> int:
        return self._token(package_name)

    def on_download_start(self, cache_entry: int) -> int:
        name = self._names.get(cache_entry, "?")
        self.log.set_phase("download")
        self.log.write(f"downloading {name}")
        return self._token(name)

    def on_download_completed(self, download_idx: int) -> None:
        self.log.write(f"downloaded {self._names.get(download_idx, '?')}")

    def on_link_start(self, operation: int, package_name: str) -> int:
        self.log.set_phase("link")
        self.log.write(f"linking {package_name}")
        return self._token(package_name)

    def on_link_complete(self, index: int) -> None:
        self.linked += 1

    # rattler calls every method of the protocol; the rest are no-ops.
    def __getattr__(self, attr: str) -> Callable[..., int]:
        if attr.startswith("on_"):
            return lambda *args, **kwargs: 0
        raise AttributeError(attr)
