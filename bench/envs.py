"""Rows 4b and 6: creating an environment with ipykernel, and its pip layer, against cp and pip.

Every repetition does the product's work and its baseline back to back, so drift of this noisy
machine hits both; the figures are medians of the repetitions and their ratio.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from common import (
    RUN,
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


def _cp(flag: str, source: Path) -> float:
    target = SCRATCH / f"cp{flag}"
    rmtree(target)
    seconds = run(["cp", flag, "--", str(source), str(target)])
    rmtree(target)
    return seconds


def create_warm(fx: Fixture, reps: int, log) -> Row:
    """Row 4b: create + build with ipykernel from a warm package cache vs cp -al / cp -a of the
    result (row 4, a bigger environment with no kernel package, is in bigenv.py)."""
    service = fx.service(like_for_like_priority=True)
    name = "warm200k"
    spec = {"conda": ["synth-198"]}
    first = breakdown(build_env(service, "local", name, spec))  # fills the package cache
    service.envs.delete("local", name)
    SCRATCH.mkdir(exist_ok=True)
    ours, cpal, cpa, parts, floor = [], [], [], [], []
    packages = files = 0
    for i in range(reps):
        built = build_env(service, "local", name, spec)
        ours.append(built.seconds)
        parts.append(breakdown(built))
        prefix = service.local.active_prefix(name)  # the version's own directory
        if not files:
            packages = len(list((prefix / "conda-meta").glob("*.json")))
            files = count_files(prefix)
        build_dir = service.local.build_dir(name, built.build.version)
        baselines = [
            lambda p=prefix: cpal.append(_cp("-al", p)),
            lambda p=prefix: cpa.append(_cp("-a", p)),
            lambda d=build_dir: floor.append(_rattler_install(fx, d)),
        ]
        for k in range(3):  # rotate, so none always follows the others' disk writes
            baselines[(i + k) % 3]()
        service.envs.delete("local", name)
    o, al, a = median(ours), median(cpal), median(cpa)
    log(f"create {name}: {ms(o)} vs cp -al {ms(al)}, cp -a {ms(a)}")
    what = f"{packages} packages / {files:,} files"
    notes = [
        summarize(parts),
        f"rattler.install() alone of the same records into an empty prefix, in-process: "
        f"{ms(median(floor))} = {median(floor) / al:.1f}× cp -al",
        f"verify (python imports what ipykernel's kernel imports as it starts; its noarch "
        f"packages ship no byte-code, as "
        f"conda-forge's): {median([p['verify'] for p in parts]) * 1000:.0f} ms with the .pyc "
        f"files an earlier build kept (core/bytecode.py); the first build, which compiled "
        f"them: {first['verify'] * 1000:.0f} ms",
    ]
    return Row(
        "4b",
        f"create, warm cache, with the default kernel package ipykernel ({what})",
        f"median {ms(o)}",
        f"cp -al {ms(al)}, cp -a {ms(a)}",
        f"{o / al:.1f}× cp -al, {o / a:.2f}× cp -a",
        "≤ 1.5× cp -al (row 4's goal)",
        o <= 1.5 * al,
        notes,
    )


def _rattler_install(fx: Fixture, build_dir: Path) -> float:
    """The library's floor: rattler.install of a build's locked records, nothing else."""
    import asyncio

    from rattler import install

    from jupyter_env_manager.core.lockfile import lock_records

    records = lock_records(build_dir)
    target = SCRATCH / "rattler-floor"
    rmtree(target)
    started = time.perf_counter()
    asyncio.run(
        install(
            records,
            target_prefix=target,
            cache_dir=fx.pkgs,
            installed_packages=[],
            show_progress=False,
        )
    )
    seconds = time.perf_counter() - started
    rmtree(target)
    return seconds


def pip_layer(fx: Fixture, reps: int, log) -> Row:
    """Row 6: the engine's uv command vs pip install, same wheels, fresh prefix copies."""
    from uv import find_uv_bin

    service = fx.service(kernel_packages=[])
    build_env(service, "local", "pipbase", {"conda": ["pip"]})
    base = service.local.active_prefix("pipbase")
    dists = [f"synthetic-pkg-{i}" for i in range(30)]
    wheels = str(fx.wheelhouse)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    uv_env = {**clean, "UV_NO_PROGRESS": "1", "NO_COLOR": "1", "UV_PYTHON_DOWNLOADS": "never"}
    pip_env = {**clean, "PIP_CONFIG_FILE": "/dev/null"}

    def install(tool: str) -> float:
        prefix = SCRATCH / f"pip-layer-{tool}"
        rmtree(prefix)
        run(["cp", "-a", "--", str(base), str(prefix)])
        python = str(prefix / "bin" / "python")
        if tool == "uv":
            argv = [
                find_uv_bin(),
                "pip",
                "install",
                "--no-config",
                "--python",
                python,
                "--no-index",
                "--find-links",
                wheels,
                "--",
                *dists,
            ]
            env = uv_env
        else:
            argv = [
                python,
                "-m",
                "pip",
                "install",
                "--no-index",
                "--find-links",
                wheels,
                "--disable-pip-version-check",
                "--",
                *dists,
            ]
            env = pip_env
        seconds = run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        site = next(prefix.glob("lib/python3*/site-packages"))
        got = len(list(site.glob("synthetic_pkg_*.dist-info")))
        if got != len(dists):
            raise RuntimeError(f"{tool} installed {got} of {len(dists)} distributions")
        rmtree(prefix)
        return seconds

    SCRATCH.mkdir(exist_ok=True)
    install("uv")  # warm-up: uv's cache (in the isolated HOME) is warm in steady state
    install("pip")
    uv_times, pip_times = [], []
    for i in range(reps):
        for tool in ("uv", "pip") if i % 2 == 0 else ("pip", "uv"):
            (uv_times if tool == "uv" else pip_times).append(install(tool))
    u, p = median(uv_times), median(pip_times)
    log(f"pip layer: uv {ms(u)} vs pip {ms(p)}")
    return Row(
        "6",
        f"pip layer: {len(dists)} dists from a local wheelhouse (uv, as the engine runs it)",
        f"median {ms(u)}",
        f"pip install {ms(p)}",
        f"{p / u:.1f}× faster",
        "≥ 5× faster",
        p / u >= 5,
        ["uv's cache warm (as after the first build); pip compiles .pyc, uv does not"],
    )
