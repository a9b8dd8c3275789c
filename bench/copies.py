"""Row 5: copy an environment local → shared, on the same filesystem and onto another one.

- 5: the shared store on the local store's filesystem: our copy (relinked from the package cache
  at the source's lock, pip layer reinstalled) against ``cp -al`` of the source prefix there.
- 5b: the shared store on a second filesystem the bench mounts (a loop-mounted ext4 image, else a
  tmpfs; skipped with the reason when neither mounts), as a shared store on NFS is: hard links
  cannot cross it, so the store links from its own package cache on that filesystem
  (``.envmgr/pkgs/<user>``, see core/pkgcache.py). Measured warm: one untimed copy first fills
  that cache, as a first build of the same packages into the shared store does (its time is
  given as a note). Against ``cp -a`` onto it, and ``cp -al`` of a prefix already on it (the
  floor of linking there).
- 5c: the by-hand way of moving an environment there, a conda-pack round trip (``conda-pack
  --format tar``, ``tar -xf`` onto the second filesystem, ``bin/conda-unpack``).

Our copies run as the panel's and REST's do: through a server's build queue whose spare worker
(core/spare.py) is ready, as after the server's first build. The same copies run by ``jupyter
envmgr copy`` (a worker started for each) are interleaved and given in the notes. Every copy is
checked for files that still name the source prefix (``cp`` keeps them all).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from builds import QueueThread
from common import (
    CLIENTS_TOLD,
    QUEUED,
    RUN,
    Built,
    Fixture,
    Row,
    breakdown,
    build_env,
    count_files,
    median,
    ms,
    rmtree,
    run,
    summarize,
)

SCRATCH = RUN / "scratch"
MOUNT = RUN / "mnt-second-fs"
IMAGE_MB = 3072


def _quiet(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def mount_second_filesystem() -> tuple[str | None, str]:
    """Mount a filesystem other than RUN's at MOUNT: (what it is, or None; why not)."""
    MOUNT.mkdir(parents=True, exist_ok=True)
    reasons = []
    image = RUN / "second-fs.img"
    if shutil.which("mkfs.ext4"):
        with open(image, "wb") as f:
            f.truncate(IMAGE_MB << 20)  # sparse
        made = _quiet(
            ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)]
        )
        if made.returncode == 0:
            done = _quiet(["mount", "-o", "loop", str(image), str(MOUNT)])
            if done.returncode == 0:
                return f"a loop-mounted ext4 image ({IMAGE_MB} MB)", ""
            reasons.append(f"mount -o loop: {done.stderr.strip()}")
        else:
            reasons.append(f"mkfs.ext4: {made.stderr.strip()}")
        image.unlink(missing_ok=True)
    else:
        reasons.append("no mkfs.ext4")
    done = _quiet(["mount", "-t", "tmpfs", "-o", "size=3g,mode=0755", "envmgr-bench", str(MOUNT)])
    if done.returncode == 0:
        return "a tmpfs (3 GB)", ""
    reasons.append(f"mount -t tmpfs: {done.stderr.strip()}")
    return None, "; ".join(reasons)


def unmount_second_filesystem() -> None:
    if os.path.ismount(MOUNT):
        if _quiet(["umount", str(MOUNT)]).returncode != 0:
            _quiet(["umount", "-l", str(MOUNT)])
    (RUN / "second-fs.img").unlink(missing_ok=True)


def _stale_files(root: Path, needle: str) -> int:
    """Regular files under root whose bytes contain needle (e.g. another prefix's path)."""
    data_needle = needle.encode()
    found = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                with open(path, "rb") as f:
                    if data_needle in f.read():
                        found += 1
            except OSError:
                continue
    return found


def _linked_files(top: Path) -> tuple[int, int]:
    """(regular files linked more than once, regular files) under ``top``."""
    linked = total = 0
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += 1
                linked += st.st_nlink > 1
    return linked, total


def _cp(flag: str, source: Path, target: Path) -> float:
    rmtree(target)
    seconds = run(["cp", flag, "--", str(source), str(target)])
    rmtree(target)
    return seconds


def _copy(service, source: str, new: str, queue=None) -> tuple[float, dict[str, float], Path]:
    """Our copy local → shared: (seconds, parts, the copy's prefix). Through ``queue`` (a
    server's build queue, its spare worker ready: what the panel's and REST's copies run), else
    in the foreground (a worker started for it: what ``jupyter envmgr copy`` runs)."""
    from jupyter_env_manager.core.runner import run_foreground

    if queue is not None:
        spare = queue.ready_spare()
    started = time.perf_counter()
    _view, build = service.sharing.copy("local", source, "shared", new)
    if queue is not None:
        built = queue.ran_in(spare, queue.run("shared", new, build, started))
        return built.seconds, breakdown(built, CLIENTS_TOLD), service.shared.active_prefix(new)
    result = run_foreground(service, "shared", new, build)
    returned_perf, returned_wall = time.perf_counter(), time.time()
    if result.status != "succeeded":
        raise RuntimeError(f"copy failed: {result.error}")
    seconds = returned_perf - started
    finished = service.builds.get("shared", new, build.version)
    parts = breakdown(Built(seconds, finished, returned_wall, returned_perf))
    return seconds, parts, service.shared.active_prefix(new)


def _conda_pack(source: Path, target: Path) -> tuple[float, dict[str, float]]:
    """pack (tar, uncompressed: its fastest), unpack onto the target, conda-unpack: seconds."""
    archive = SCRATCH / "conda-pack.tar"
    archive.unlink(missing_ok=True)
    rmtree(target)
    pack = [_conda_pack_bin() or "conda-pack", "-p", str(source), "-o", str(archive)]
    parts = {"pack": run([*pack, "--format", "tar", "--quiet"], stdout=subprocess.DEVNULL)}
    target.mkdir()
    parts["tar -xf"] = run(["tar", "-xf", str(archive), "-C", str(target)])
    parts["conda-unpack"] = run([str(target / "bin" / "conda-unpack")])
    archive.unlink()
    return sum(parts.values()), parts


MOVE = "move an environment to another filesystem: ours vs a conda-pack round trip"


def _skipped(number: str, measure: str, goal: str, why: str) -> Row:
    return Row(number, measure, "—", "—", "—", goal, None, [why])


def _conda_pack_bin() -> str | None:
    beside = Path(sys.executable).with_name("conda-pack")  # this venv's, else on PATH
    return str(beside) if beside.exists() else shutil.which("conda-pack")


def copy_to_shared(fx: Fixture, reps: int, log) -> list[Row]:
    """Rows 5, 5b and 5c (see the module docstring)."""
    pip = [f"synthetic-pkg-{i}" for i in range(30)]
    local = fx.service(like_for_like_priority=True)
    build_env(local, "local", "pip30", {"conda": ["synth-047"], "pip": pip})
    source = local.local.active_prefix("pip30")
    n_pip = local.local.read_state("pip30").get("pip_count", 0)
    packages = len(list((source / "conda-meta").glob("*.json")))
    files = count_files(source)
    what = f"pip layer of {n_pip} dists ({packages} conda packages, {files:,} files)"
    SCRATCH.mkdir(exist_ok=True)
    rows = [_same_filesystem(fx, source, what, reps, log)]
    kind, why = mount_second_filesystem()
    try:
        if kind is None:
            skipped = f"skipped: could not mount a second filesystem ({why})"
            rows.append(_skipped("5b", f"copy local→shared onto another filesystem, {what}",
                                 "faster than cp -a", skipped))  # fmt: skip
            rows.append(_skipped("5c", MOVE, "ours ≤ conda-pack", skipped))
        else:
            rows += _other_filesystem(fx, source, what, kind, reps, log)
    finally:
        unmount_second_filesystem()
    return rows


def _imports_run(fx: Fixture, every, name: str, reps_done: list[float], i: int) -> None:
    """The same copy with verify's imports run (verify_once = False), for the notes."""
    seconds, _parts, _prefix = _copy(every, "pip30", f"{name}{i}-every")
    reps_done.append(seconds)
    every.envs.delete("shared", f"{name}{i}-every")


def _verify_note(checked: int, reps: int, imports: list[float], ratio: str) -> str:
    """How many copies checked the lock's certificate instead of importing, and what the same
    copies cost with the imports run."""
    return (
        f"verify done once per lock (core/verified.py): {checked} of {reps} copies checked the "
        "certificate of the lock's verify (the source's build, or the first copy) instead of "
        f"importing; the same copies with verify_once = False, interleaved: median "
        f"{ms(median(imports))} ({ratio})"
    )


def _cli_run(service, name: str, reps_done: list[float]) -> None:
    """The same copy as ``jupyter envmgr copy`` runs it (a worker started for it), for the
    notes."""
    seconds, _parts, _prefix = _copy(service, "pip30", name)
    reps_done.append(seconds)
    service.envs.delete("shared", name)


def _queue(service) -> QueueThread:
    queue = QueueThread(service)
    queue.start_spare()
    return queue


def _same_filesystem(fx: Fixture, source: Path, what: str, reps: int, log) -> Row:
    service = fx.service(like_for_like_priority=True)
    queue = _queue(service)
    try:
        return _same_filesystem_queued(fx, service, queue, source, what, reps, log)
    finally:
        queue.close()


def _same_filesystem_queued(fx, service, queue, source: Path, what: str, reps: int, log) -> Row:
    every = fx.service(like_for_like_priority=True, verify_once=False)
    ours, cpal, cpa, parts, imports, logs, cli = [], [], [], [], [], [], []
    stale = None
    target = fx.shared_root.parent / "cp-same-fs"  # beside the shared store
    for i in range(reps):
        steps: list[Callable[[], None]] = [
            lambda: cpal.append(_cp("-al", source, target)),
            lambda: cpa.append(_cp("-a", source, target)),
            lambda i=i: _imports_run(fx, every, "same", imports, i),
            lambda i=i: _cli_run(service, f"same{i}-cli", cli),
        ]
        seconds, got, prefix = _copy(service, "pip30", f"same{i}", queue)
        ours.append(seconds)
        parts.append(got)
        if stale is None:
            stale = _stale_files(prefix, str(source))
        logs.append(service.builds.read_log("shared", f"same{i}", 1)[0].decode())
        service.envs.delete("shared", f"same{i}")
        for k in range(len(steps)):
            steps[(i + k) % len(steps)]()
    o, al, a = median(ours), median(cpal), median(cpa)
    checked = sum("checked, unchanged" in text for text in logs)
    log(f"copy, same filesystem: {ms(o)} vs cp -al {ms(al)}, cp -a {ms(a)}")
    return Row(
        "5",
        f"copy local→shared, same filesystem, {what}",
        f"median {ms(o)}",
        f"cp -al {ms(al)}, cp -a {ms(a)}",
        f"{o / al:.2f}× cp -al, {o / a:.2f}× cp -a",
        "≤ 1.5× cp -al",
        o <= 1.5 * al,
        [
            f"{QUEUED}; {summarize(parts)}",
            f"the same copy run by jupyter envmgr copy (a worker started for it), "
            f"interleaved: median {ms(median(cli))} ({median(cli) / al:.2f}× cp -al)",
            _verify_note(checked, reps, imports, f"{median(imports) / al:.2f}× cp -al"),
            f"files naming the source prefix: our copy {stale}; a cp copy keeps every one",
        ],
    )


def _other_filesystem(fx: Fixture, source: Path, what: str, kind: str, reps: int, log) -> list[Row]:
    shared_root = MOUNT / "shared"
    service = fx.service(like_for_like_priority=True, shared_root=str(shared_root))
    queue = _queue(service)
    try:
        return _other_filesystem_queued(fx, service, queue, source, what, kind, reps, log)
    finally:
        queue.close()


def _other_filesystem_queued(
    fx, service, queue, source: Path, what: str, kind: str, reps: int, log
) -> list[Row]:
    shared_root = MOUNT / "shared"
    every = fx.service(like_for_like_priority=True, shared_root=str(shared_root), verify_once=False)
    imports: list[float] = []
    logs: list[str] = []
    target = MOUNT / "cp-a"
    unpacked = MOUNT / "conda-pack"
    on_it = MOUNT / "cp-src"  # the source prefix, already on the second filesystem
    rmtree(on_it)
    run(["cp", "-a", "--", str(source), str(on_it)])
    pack_ok = _conda_pack_bin() is not None
    # The first copy into the store fills its package cache (cold): untimed in the median.
    cold, _parts, _prefix = _copy(service, "pip30", "other-cold")
    log_text = service.builds.read_log("shared", "other-cold", 1)[0].decode()
    cache = next(
        (line.split("] ", 1)[1] for line in log_text.splitlines() if "package cache" in line),
        "no package cache line in the log",
    )
    service.envs.delete("shared", "other-cold")
    ours, cpa, cpal, packs, parts, pack_parts, cli = [], [], [], [], [], [], []
    stale: dict[str, int] = {}
    for i in range(reps):
        steps: list[Callable[[], None]] = [
            lambda: cpa.append(_cp("-a", source, target)),
            lambda: cpal.append(_cp("-al", on_it, target)),
            lambda i=i: _imports_run(fx, every, "other", imports, i),
            lambda i=i: _cli_run(service, f"other{i}-cli", cli),
        ]
        if pack_ok:

            def pack() -> None:
                seconds, got = _conda_pack(source, unpacked)
                packs.append(seconds)
                pack_parts.append(got)
                if "conda-pack" not in stale:
                    stale["conda-pack"] = _stale_files(unpacked, str(source))
                rmtree(unpacked)

            steps.append(pack)
        seconds, got, prefix = _copy(service, "pip30", f"other{i}", queue)
        ours.append(seconds)
        parts.append(got)
        if "ours" not in stale:
            stale["ours"] = _stale_files(prefix, str(source))
            linked = _linked_files(prefix)
        logs.append(service.builds.read_log("shared", f"other{i}", 1)[0].decode())
        service.envs.delete("shared", f"other{i}")
        for k in range(len(steps)):
            steps[(i + k) % len(steps)]()
    rmtree(on_it)
    o, a, al = median(ours), median(cpa), median(cpal)
    log(f"copy, other filesystem: {ms(o)} vs cp -a {ms(a)}, cp -al {ms(al)} (cold {ms(cold)})")
    stale_note = ", ".join(f"{k} {v}" for k, v in stale.items())
    rows = [
        Row(
            "5b",
            f"copy local→shared onto another filesystem ({kind}), {what}, the store's package "
            "cache warm",
            f"median {ms(o)}",
            f"cp -a onto it {ms(a)}, cp -al on it {ms(al)}",
            f"{o / a:.2f}× cp -a, {o / al:.2f}× cp -al",
            "faster than cp -a",
            o < a,
            [
                f"{QUEUED}; {summarize(parts)}",
                f"the same copy run by jupyter envmgr copy (a worker started for it), "
                f"interleaved: median {ms(median(cli))} ({median(cli) / a:.2f}× cp -a)",
                _verify_note(
                    sum("checked, unchanged" in text for text in logs),
                    reps,
                    imports,
                    f"{median(imports) / a:.2f}× cp -a",
                ),
                "warm: the shared store's package cache on that filesystem already holds the "
                "packages, as after a first build of them into the shared store; files are "
                f"hard-linked from it ({cache}); files of the copy linked more than once: "
                f"{linked[0]:,} of {linked[1]:,}",
                f"the first copy into the store (cold cache: every package extracted there "
                f"once) took {ms(cold)}, {cold / a:.2f}× cp -a (one run, not in the median)",
                "cp -al: a prefix already on that filesystem, hard-linked there (no relocation:"
                " the floor of linking on it)",
                f"files naming the source prefix: {stale_note}; cp -a keeps every one",
            ],
        )
    ]
    if not pack_ok:
        why = "skipped: conda-pack is not installed (pip install conda-pack)"
        rows.append(_skipped("5c", MOVE, "ours ≤ conda-pack", why))
        return rows
    p = median(packs)
    keys = list(pack_parts[0])
    split = ", ".join(f"{k} {median([pp[k] for pp in pack_parts]) * 1000:.0f}" for k in keys)
    log(f"conda-pack round trip: {ms(p)} ({split})")
    rows.append(
        Row(
            "5c",
            f"move an environment onto another filesystem ({kind}): our copy vs a conda-pack "
            "round trip (pack, tar -xf, conda-unpack)",
            f"median {ms(o)}",
            f"conda-pack round trip {ms(p)}",
            f"{o / p:.2f}× conda-pack",
            "ours ≤ conda-pack",
            o <= p,
            [
                f"conda-pack median ms: {split} (--format tar: no compression, its fastest)",
                f"files naming the source prefix after conda-unpack: {stale.get('conda-pack')}",
            ],
        )
    )
    return rows
