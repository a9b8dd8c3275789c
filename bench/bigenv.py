"""Row 4: create a realistic big environment from a warm package cache, against cp -al / cp -a.

The channel (``big-000`` ... ``big-398`` and ``python``: 400 packages, ~20,000 files, ~190 MB) is
shaped like a data-science environment from conda-forge: a few packages with thousands of files,
tens with hundreds, most with a few dozen; a quarter are noarch python (their files go under
``lib/pythonX.Y/site-packages``); every 7th text file carries the prefix placeholder (scripts,
``.pc``, ``.cmake`` and config files do in real packages), which the installer rewrites, so those
files are copied, not hard-linked; every 20th file is a binary blob of 16-256 kB. Requesting
``big-398`` pulls in all of them. Written once with
:mod:`jupyter_env_manager.testing.channel` (real ``.conda`` archives) and cached in
``bench/.work/cache``.

``python bench/bigenv.py profile SETTINGS_JSON NAME OUT``: one build under py-spy (used by the
row; see :func:`profile_build`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

from builds import QueueThread
from common import (
    CLIENTS_TOLD,
    QUEUED,
    RUN,
    WORK,
    Fixture,
    Row,
    breakdown,
    cli_build,
    count_files,
    median,
    ms,
    rmtree,
    run,
    summarize,
)

LAYOUT = 1  # bump when the packages change: the cached channel is then rewritten
N_PACKAGES = 399  # + python = 400
PROFILES = WORK / "profiles"


def _package(i: int, rng: random.Random, names: list[str]):
    from jupyter_env_manager.testing.channel import PREFIX_PLACEHOLDER, PackageDef

    name = names[i]
    if i % 100 == 7:  # 4 huge packages (a compiler runtime, a big library's headers...)
        n_files = 1500
    elif i % 10 == 3:  # 40 medium ones
        n_files = 150
    else:
        n_files = rng.randint(12, 32)
    python = i % 4 == 1
    module = name.replace("-", "_")
    files: dict[str, bytes | str] = {}
    for k in range(n_files):
        sub = f"d{k // 40:02d}"
        if k % 20 == 19:  # a binary blob: never rewritten, hard-linked
            data = rng.randbytes(rng.randint(16, 256) * 1024)
            path = f"lib/{name}/{sub}/blob-{k:04d}.so" if not python else None
            files[path or f"site-packages/{module}/{sub}/blob_{k:04d}.so"] = data
            continue
        lines = rng.randint(8, 120)
        body = f"# {name} file {k}\n" + "".join(
            f"value_{j} = {rng.randint(0, 10**9)}  # lorem ipsum dolor sit amet\n"
            for j in range(lines)
        )
        if k % 7 == 0:
            body = f'PREFIX = "{PREFIX_PLACEHOLDER}"\n' + body
        if python:
            files[f"site-packages/{module}/{sub}/m{k:04d}.py"] = body
        else:
            kind = ("share", "include", "etc")[k % 3]
            files[f"{kind}/{name}/{sub}/f{k:04d}.txt"] = body
    depends = sorted({names[j] for j in (i - 1, i // 2) if 0 <= j < i})
    if python:
        depends.append("python")
    return PackageDef(
        name,
        "1.0",
        depends=depends,
        files=files,
        noarch="python" if python else "generic",
        archive_format="conda",
    )


def channel(log) -> str:
    """The big channel's URL, written the first time (about a minute) and then reused."""
    import rattler.index

    from jupyter_env_manager.testing.channel import channel_url, python_package, write_package

    root = WORK / "cache" / f"bigenv-v{LAYOUT}-py{sys.version_info[0]}{sys.version_info[1]}"
    done = root / ".complete"
    if done.exists():
        return channel_url(root)
    rmtree(root)
    started = time.monotonic()
    rng = random.Random(14)
    names = [f"big-{i:03d}" for i in range(N_PACKAGES)]
    write_package(python_package(), root)
    for i in range(N_PACKAGES):
        write_package(_package(i, rng, names), root)
    (root / "linux-64").mkdir(exist_ok=True)
    asyncio.run(rattler.index.index_fs(root, write_zst=False, write_shards=False, force=True))
    done.write_text("")
    log(f"big channel written in {time.monotonic() - started:.0f} s: {root}")
    return channel_url(root)


def _cp(flag: str, source: Path, scratch: Path) -> float:
    target = scratch / f"cp{flag}"
    rmtree(target)
    seconds = run(["cp", flag, "--", str(source), str(target)])
    rmtree(target)
    return seconds


def rattler_floor(pkgs: Path, build_dir: Path, target: Path) -> float:
    """The library's floor: rattler.install of a build's locked records, nothing else."""
    from rattler import install

    from jupyter_env_manager.core.lockfile import lock_records

    records = lock_records(build_dir)
    rmtree(target)
    started = time.perf_counter()
    asyncio.run(
        install(
            records,
            target_prefix=target,
            cache_dir=pkgs,
            installed_packages=[],
            show_progress=False,
        )
    )
    seconds = time.perf_counter() - started
    rmtree(target)
    return seconds


def create_big(fx: Fixture, reps: int, log, fresh: tuple[Path, str] | None = None) -> Row:
    """Row 4 on the run's filesystem; with ``fresh`` (a mounted directory, what it is), row 4c:
    the same with the local store, package cache and baselines' copies on that filesystem."""
    url = channel(log)
    base = fresh[0] if fresh else RUN
    pkgs, scratch = base / "pkgs-big", base / "scratch"
    settings = {"channels": [url], "kernel_packages": [], "pkgs_dir": str(pkgs)}
    if fresh:
        settings["local_root"] = str(base / "local")
    service = fx.service(like_for_like_priority=True, **settings)
    queue = QueueThread(service)
    try:
        return _create_big(service, queue, pkgs, scratch, reps, log, fresh)
    finally:
        queue.close()


def _create_big(service, queue, pkgs: Path, scratch: Path, reps: int, log, fresh) -> Row:
    name, spec = "big", {"conda": [f"big-{N_PACKAGES - 1:03d}"]}
    queue.build("local", name, spec)  # fills the package cache; the queue's spare starts
    service.envs.delete("local", name)
    scratch.mkdir(exist_ok=True)
    ours, cpal, cpa, parts, floor, cli = [], [], [], [], [], []
    packages = files = placeholders = size = dirs = 0
    for i in range(reps):
        built = queue.build_ready("local", name, spec)
        ours.append(built.seconds)
        parts.append(breakdown(built, CLIENTS_TOLD))
        prefix = service.local.active_prefix(name)
        if not files:
            packages = len(list((prefix / "conda-meta").glob("*.json")))
            files = count_files(prefix)
            placeholders, size, dirs = _inventory(prefix)
        build_dir = service.local.build_dir(name, built.build.version)
        baselines = [
            lambda p=prefix: cpal.append(_cp("-al", p, scratch)),
            lambda p=prefix: cpa.append(_cp("-a", p, scratch)),
            lambda d=build_dir: floor.append(rattler_floor(pkgs, d, scratch / "rattler-floor")),
            lambda: cli_build(service, "local", f"{name}-cli", spec, cli),
        ]
        for k in range(len(baselines)):  # rotate: none always follows the others' disk writes
            baselines[(i + k) % len(baselines)]()
        if i < reps - 1:
            service.envs.delete("local", name)
    o, al, a, fl = median(ours), median(cpal), median(cpa), median(floor)
    log(
        f"create big{where_log(fresh)}: {ms(o)} vs cp -al {ms(al)}, cp -a {ms(a)}, "
        f"rattler floor {ms(fl)}"
    )
    notes = [
        f"{QUEUED}; {summarize(parts)}",
        f"the same create + build by the CLI (a worker started for it), interleaved: median "
        f"{ms(median(cli))} ({median(cli) / al:.2f}× cp -al)",
        f"rattler.install() alone of the same records into an empty prefix, in-process: "
        f"{ms(fl)} = {fl / al:.1f}× cp -al (the library's floor: ours is {o / fl:.2f}× it)",
        f"{placeholders:,} files carry the prefix placeholder (rewritten, so copied: a new "
        f"inode each, as each of the {dirs:,} directories is for both us and cp -al); "
        f"{size / 1e6:.0f} MB in all",
    ]
    if fresh:
        notes.append(
            "the same as row 4 on a filesystem made for this row: no inode freed recently "
            "(row 4's disk is the run's, where builds and deletes have just happened)"
        )
    else:
        notes += profile_build(service, name, spec, build_dir, scratch, log)
    service.envs.delete("local", name)
    where = f", on {fresh[1]}" if fresh else ""
    return Row(
        "4c" if fresh else "4",
        f"create, warm cache, big env ({packages} packages / {files:,} files, no pip layer, "
        f"kernel_packages=[]){where}",
        f"median {ms(o)}",
        f"cp -al {ms(al)}, cp -a {ms(a)}",
        f"{o / al:.2f}× cp -al, {o / a:.2f}× cp -a",
        "≤ 1.5× cp -al",
        o <= 1.5 * al,
        notes,
    )


def create_big_fresh(fx: Fixture, reps: int, log) -> Row:
    """Row 4c: row 4 on a filesystem the bench mounts for it (see copies.py)."""
    import copies

    kind, why = copies.mount_second_filesystem()
    if kind is None:
        measure = "create, warm cache, big env, on a new filesystem"
        reason = f"skipped: could not mount a filesystem ({why})"
        return Row("4c", measure, "—", "—", "—", "≤ 1.5× cp -al", None, [reason])
    try:
        return create_big(fx, reps, log, fresh=(copies.MOUNT, kind))
    finally:
        copies.unmount_second_filesystem()


def where_log(fresh: tuple[Path, str] | None) -> str:
    return f" on {fresh[1]}" if fresh else ""


def _inventory(prefix: Path) -> tuple[int, int, int]:
    """Files of the prefix's records that had a placeholder, the prefix's bytes, directories."""
    count = 0
    for record in (prefix / "conda-meta").glob("*.json"):
        data = json.loads(record.read_text())
        paths = (data.get("paths_data") or {}).get("paths", [])
        count += sum(1 for p in paths if p.get("prefix_placeholder"))
    size = dirs = 0
    for dirpath, _dirs, names in os.walk(prefix):
        dirs += 1
        for n in names:
            path = os.path.join(dirpath, n)
            if not os.path.islink(path):
                size += os.stat(path).st_size
    return count, size, dirs


# -- profiles ----------------------------------------------------------------------------------


def profile_build(service, name: str, spec: dict, build_dir: Path, scratch: Path, log) -> list[str]:
    """rattler.install alone and cp -al under perf (user space vs the kernel's filesystem
    work), then one more build under py-spy (its Python side). The environment is built."""
    import profiles

    me = [sys.executable, __file__]
    prefix = service.local.active_prefix(name)
    floor = [*me, "floor", service.settings.pkgs_dir, str(build_dir), str(scratch / "perf-floor")]
    notes = []
    for what, argv in (
        ("rattler.install alone", floor),
        ("cp -al", ["cp", "-al", "--", str(prefix), str(scratch / "perf-cpal")]),
    ):
        data, error = profiles.record_perf(f"{name}-{argv[-1].rsplit('-', 1)[-1]}", argv)
        rmtree(scratch / "perf-cpal")
        notes.append(
            f"perf of {what} ({data.name}, % of samples, inclusive): "
            f"{profiles.summarize_perf(data)}"
            if data
            else f"no perf profile of {what}: {error}"
        )
    if profiles.py_spy() is None:  # the environment stays built for the caller
        notes.append("no py-spy profile: py-spy is not installed (pip install py-spy)")
        log(f"profiles of a {name} build in {profiles.PROFILES}")
        return notes
    service.envs.delete("local", name)
    settings = json.dumps(
        {k: getattr(service.settings, k) for k in ("channels", "kernel_packages", "pkgs_dir")}
    )
    out, error = profiles.record_py_spy(name, [*me, "build", settings, name, json.dumps(spec)])
    notes.append(
        f"py-spy of one build ({out.name}): {profiles.summarize_py_spy(out)}"
        if out
        else f"no py-spy profile: {error}"
    )
    log(f"profiles of a {name} build in {profiles.PROFILES}")
    return notes


def _profile_main(settings_json: str, name: str, spec_json: str) -> None:
    """The child py-spy records: one build with the given settings (isolation inherited)."""
    import common

    settings = json.loads(settings_json)
    fx = Fixture("", Path(), Path(settings["pkgs_dir"]), RUN / "stores/local", RUN / "stores/sh")
    fx.channel = settings["channels"][0]
    service = fx.service(like_for_like_priority=True, **settings)
    common.build_env(service, "local", name, json.loads(spec_json))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "build":
        _profile_main(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "floor":
        rattler_floor(*(Path(a) for a in sys.argv[2:]))
    else:
        sys.exit(__doc__)
