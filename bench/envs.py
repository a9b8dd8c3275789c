"""Rows 4b, 4d and 6: creating an environment with ipykernel, and its pip layer, against cp and pip.

Every repetition does the product's work and its baseline back to back, so drift of this noisy
machine hits both; the figures are medians of the repetitions and their ratio.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from builds import QueueThread
from common import (
    CLIENTS_TOLD,
    QUEUED,
    RUN,
    Fixture,
    Row,
    breakdown,
    build_env,
    cli_build,
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


def create_warm(fx: Fixture, reps: int, log) -> list[Row]:
    """Rows 4b and 4d: create + build with ipykernel from a warm package cache vs cp -al / cp -a
    of the result (row 4, a bigger environment with no kernel package, is in bigenv.py). 4b: a
    lock never verified (verify_once = False: verify's imports run, as for any new lock); 4d:
    the same lock again, its verify done once (core/verified.py). Both in each repetition."""
    once = fx.service(like_for_like_priority=True)
    every = fx.service(like_for_like_priority=True, verify_once=False)
    queues = {"once": QueueThread(once), "every": QueueThread(every)}
    try:
        return _create_warm(fx, once, every, queues, reps, log)
    finally:
        for queue in queues.values():
            queue.close()


def _create_warm(fx: Fixture, once, every, queues, reps: int, log) -> list[Row]:
    name = "warm200k"
    spec = {"conda": ["synth-198"]}
    # fills the package cache (and compiles the byte-code); the queue's spare starts
    first = breakdown(queues["once"].build("local", name, spec), CLIENTS_TOLD)
    once.envs.delete("local", name)
    queues["every"].start_spare()
    SCRATCH.mkdir(exist_ok=True)
    ours: dict[str, list[float]] = {"every": [], "once": []}
    parts: dict[str, list[dict[str, float]]] = {"every": [], "once": []}
    cpal, cpa, floor, cli = [], [], [], []
    packages = files = 0
    skipped = 0
    for i in range(reps):
        for kind, service in sorted({"every": every, "once": once}.items(), reverse=i % 2 == 1):
            built = queues[kind].build_ready("local", name, spec)
            ours[kind].append(built.seconds)
            parts[kind].append(breakdown(built, CLIENTS_TOLD))
            log_text = service.builds.read_log("local", name, built.build.version)[0].decode()
            skipped += kind == "once" and "checked, unchanged" in log_text
            prefix = service.local.active_prefix(name)  # the version's own directory
            if not files:
                packages = len(list((prefix / "conda-meta").glob("*.json")))
                files = count_files(prefix)
            if kind == "once":
                build_dir = service.local.build_dir(name, built.build.version)
                baselines = [
                    lambda p=prefix: cpal.append(_cp("-al", p)),
                    lambda p=prefix: cpa.append(_cp("-a", p)),
                    lambda d=build_dir: floor.append(_rattler_install(fx, d)),
                    lambda: cli_build(every, "local", f"{name}-cli", spec, cli),
                ]
                for k in range(len(baselines)):  # rotate: none always follows the others'
                    baselines[(i + k) % len(baselines)]()  # disk writes
            service.envs.delete("local", name)
    e, o, al, a = median(ours["every"]), median(ours["once"]), median(cpal), median(cpa)
    log(f"create {name}: {ms(e)}, again {ms(o)} vs cp -al {ms(al)}, cp -a {ms(a)}")
    what = f"{packages} packages / {files:,} files"
    verify = {k: median([p["verify"] for p in parts[k]]) * 1000 for k in parts}
    notes = [
        f"{QUEUED}; {summarize(parts['every'])}",
        f"the same create + build by the CLI (a worker started for it), interleaved: median "
        f"{ms(median(cli))} ({median(cli) / al:.2f}× cp -al)",
        f"rattler.install() alone of the same records into an empty prefix, in-process: "
        f"{ms(median(floor))} = {median(floor) / al:.1f}× cp -al",
        f"verify (python imports what ipykernel's kernel imports as it starts; its noarch "
        f"packages ship no byte-code, as conda-forge's): {verify['every']:.0f} ms with the "
        f".pyc files an earlier build kept (core/bytecode.py); the first build, which compiled "
        f"them: {first['verify'] * 1000:.0f} ms",
    ]
    again = [
        f"{QUEUED}; {summarize(parts['once'])}",
        f"verify {verify['once']:.0f} ms: the certificate of the first build's verify checked "
        f"(a stat per file python loads) in {skipped} of {reps} builds, instead of "
        f"{verify['every']:.0f} ms of imports (row 4b, the same builds with verify_once = False, "
        "interleaved)",
    ]
    return [
        Row(
            "4b",
            f"create, warm cache, with the default kernel package ipykernel ({what}), a lock "
            "not verified before",
            f"median {ms(e)}",
            f"cp -al {ms(al)}, cp -a {ms(a)}",
            f"{e / al:.1f}× cp -al, {e / a:.2f}× cp -a",
            "≤ 1.5× cp -al (row 4's goal)",
            e <= 1.5 * al,
            notes,
        ),
        Row(
            "4d",
            f"create again, warm cache, ipykernel ({what}): a lock verified before (a copy's, "
            "a revert's, a published or pinned version's), its verify done once",
            f"median {ms(o)}",
            f"cp -al {ms(al)}, cp -a {ms(a)}",
            f"{o / al:.1f}× cp -al, {o / a:.2f}× cp -a",
            "≤ 1.5× cp -al (row 4's goal); verify skipped when the same lock was verified before",
            o <= 1.5 * al and skipped == reps,
            again,
        ),
    ]


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
