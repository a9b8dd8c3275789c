"""Where a build's time goes: py-spy for its Python side, perf for rattler's native threads.

py-spy samples Python threads only (rattler's linking runs in Rust threads it cannot see), so
rows 4 and 10 use both: ``py-spy record --subprocesses`` of one build (what the worker's Python
does: imports, solve, verify...) and, where ``perf`` exists, ``perf record -g`` of
``rattler.install`` alone (user space vs the kernel's filesystem work). Raw outputs are kept in
``bench/.work/profiles``; the rows' notes carry one-line summaries.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from common import WORK

PROFILES = WORK / "profiles"


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if os.access(found, os.X_OK) else None


def record_py_spy(name: str, argv: list[str], rate: int = 250) -> tuple[Path | None, str]:
    """Run argv under ``py-spy record --subprocesses`` (raw stacks); (output, error)."""
    return _py_spy(name, ["--subprocesses", "--rate", str(rate)], ["--", *argv])


def attach_py_spy(name: str, pid: int, seconds: float, rate: int = 200) -> tuple[Path | None, str]:
    """``py-spy record`` of a running process for ``seconds`` (raw stacks); (output, error)."""
    where = ["--pid", str(pid), "--duration", str(round(seconds))]
    return _py_spy(name, ["--rate", str(rate)], where)


def _py_spy(name: str, options: list[str], target: list[str]) -> tuple[Path | None, str]:
    spy = py_spy()
    if spy is None:
        return None, "py-spy is not installed (pip install py-spy)"
    PROFILES.mkdir(parents=True, exist_ok=True)
    out = PROFILES / f"{name}.py-spy.txt"
    out.unlink(missing_ok=True)
    argv = [spy, "record", "--nonblocking", *options, "--format", "raw", "--output", str(out)]
    argv += target
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not out.exists():
        return None, f"py-spy failed: {done.stderr.strip()[-300:]}"
    return out, ""


def summarize_ours(path: Path, seconds: float, rate: int = 200, top: int = 4) -> str:
    """What our code did in a server over a window: samples with one of our frames on the
    stack, by our innermost function, as ms and as a share of a core. (py-spy counts some
    waiting threads as busy, the event loop's epoll among them: those have no frame of ours.)"""
    groups: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if "jupyter_env_manager/" in f]
        if frames and count.isdigit():
            func, _, where = frames[-1].partition(" (")
            groups[f"{func} ({where.rsplit('/', 1)[-1].split(':')[0]})"] += int(count)
    total = sum(groups.values()) / rate
    body = ", ".join(f"{what} {n * 1000 / rate:.0f} ms" for what, n in groups.most_common(top))
    return f"our code {total * 1000:.0f} ms in {seconds:g} s = {total / seconds:.2%} of a core" + (
        f" ({body})" if body else ""
    )


def _label(frames: list[str]) -> tuple[str, str]:
    """(process, what) of one sample: the worker's or its parent's, and our innermost function
    on the stack (imports and the rest are named as such)."""
    worker = any("jupyter_env_manager.core.worker" in f for f in frames if f.startswith("process"))
    frames = [f for f in frames if not f.startswith("process ")]
    who = "worker" if worker else "parent"
    if any(f.startswith("_find_and_load") for f in frames):
        return who, "imports"
    ours = [f for f in frames if "jupyter_env_manager/" in f]
    if ours:
        func, _, where = ours[-1].partition(" (")
        return who, f"{func} ({where.rsplit('/', 1)[-1].split(':')[0]})"
    name = frames[-1].split(" (")[0] if frames else ""
    if not name.isprintable() or not name.strip():  # py-spy read no name (a frame torn down)
        return who, "no Python frame"
    return who, f"other: {name}"


def summarize_py_spy(path: Path, rate: int = 250, top: int = 8) -> str:
    """Samples grouped by process and step, as ms of Python CPU (samples / rate)."""
    groups: Counter[tuple[str, str]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            groups[_label(stack.split(";"))] += int(count)
    if not groups:
        return "no samples"
    per_process = Counter()
    for (who, _), n in groups.items():
        per_process[who] += n
    heads = ", ".join(f"{who} {n * 1000 / rate:.0f} ms" for who, n in per_process.most_common())
    worker = [(what, n) for (who, what), n in groups.most_common() if who == "worker"][:top]
    body = ", ".join(f"{what} {n * 1000 / rate:.0f}" for what, n in worker)
    if not body:
        return f"Python CPU sampled: {heads}; the worker ended before py-spy attached to it"
    return f"Python CPU sampled: {heads}; the worker's by step (ms): {body}"


def perf_available() -> bool:
    if shutil.which("perf") is None:
        return False
    done = subprocess.run(
        ["perf", "record", "-o", os.devnull, "--", "true"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode == 0


def record_perf(name: str, argv: list[str]) -> tuple[Path | None, str]:
    """``perf record -g`` of argv (999 Hz, all threads); (perf.data, error)."""
    if not perf_available():
        return None, "perf is not available here (apt-get install linux-perf; root or perf_event)"
    PROFILES.mkdir(parents=True, exist_ok=True)
    out = PROFILES / f"{name}.perf.data"
    done = subprocess.run(
        ["perf", "record", "-F", "999", "-g", "-o", str(out), "--", *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        return None, f"perf failed: {done.stderr.strip()[-300:]}"
    return out, ""


PERF_SYMBOLS = {
    # label: symbol (children %: the time spent in it and below)
    "kernel, all syscalls": "do_syscall_64",
    "ext4 new inode (mkdir, create, symlink)": "__ext4_new_inode",
    "  of it ext4's recently_deleted scan": "recently_deleted",
    "mkdir": "ext4_mkdir",
    "create files (copies, records)": "ext4_create",
    "hard links (linkat)": "do_linkat",
    "symlinks": "do_symlinkat",
    "unlink / rmdir": "do_unlinkat",
    "rattler link_package_sync": "rattler::install::link_package_sync",
}


def summarize_perf(path: Path) -> str:
    """Shares of the samples (inclusive) in the symbols that say where install's time goes."""
    done = subprocess.run(
        ["perf", "report", "-i", str(path), "--stdio", "--children", "--sort", "sym", "-g", "none"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    children: dict[str, float] = {}
    samples = re.search(r"# Samples: (\S+)", done.stdout)
    for line in done.stdout.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(.+?)\s*$", line)
        if m:
            children.setdefault(m.group(3), float(m.group(1)))
    parts = [
        f"{label.strip()} {children[sym]:.0f}%"
        for label, sym in PERF_SYMBOLS.items()
        if sym in children
    ]
    head = f"{samples.group(1)} samples" if samples else "samples"
    return f"{head}: " + ", ".join(parts) if parts else "no symbols resolved"


def worker_imports(top: int = 8) -> str:
    """``python -X importtime`` of what a worker imports before it builds (the module and
    rattler): the slowest modules at the first two levels, cumulative ms."""
    code = "import jupyter_env_manager.core.worker, rattler"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    found: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:
            found.append((int(m.group(1)), m.group(3)))
    total = sum(us for us, name in found if name in ("jupyter_env_manager.core.worker", "rattler"))
    found.sort(reverse=True)
    parts = ", ".join(f"{name} {us / 1000:.0f}" for us, name in found[:top])
    return f"{total / 1000:.0f} ms in all; cumulative ms: {parts}"
