"""Benchmarks of jupyter_env_manager: ``python bench/run.py [--quick] [--rows 1,4,...]``.

Prints a table and writes it to bench/RESULTS.md (a full run of every row), else to
bench/.work/RESULTS-quick.md / RESULTS-partial.md. Every figure is a ratio against a baseline
measured in the same run; medians over repeated runs. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ROWS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "20", "21")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, listing at 10/100/1,000, no row 4b",
    )
    parser.add_argument("--rows", default=",".join(ROWS), help="rows to run, e.g. 1,2,8")
    args = parser.parse_args(argv)
    rows_wanted = set(args.rows.split(","))
    quick = args.quick
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    common.isolate()
    # Imported after isolate(): nothing may resolve a per-user path before it.
    import bigenv
    import builds
    import copies
    import envs
    import kernelstart
    import listing
    import responsiveness
    import search
    import server_cpu

    log(f"work tree {common.RUN}")
    fx = common.make_fixture(n_synthetic=200, files=15, n_wheels=30)
    log("channel and wheelhouse written")
    service = fx.service()
    reps = 3 if quick else 7
    rows: list[common.Row] = []
    if "4" in rows_wanted:
        rows.append(bigenv.create_big(fx, 3 if quick else 5, log))
        rows.append(bigenv.create_big_fresh(fx, 3 if quick else 5, log))
        if not quick:
            rows += envs.create_warm(fx, reps, log)
    if "10" in rows_wanted:
        rows.append(builds.fixed_cost(fx, 5 if quick else 11, log))
    if "6" in rows_wanted:
        rows.append(envs.pip_layer(fx, reps, log))
    if "5" in rows_wanted:
        rows += copies.copy_to_shared(fx, 3 if quick else 5, log)
    if "7" in rows_wanted:
        rows.append(kernelstart.kernel_start(service, 4 if quick else 10, log))
    if rows_wanted & {"1", "2"}:
        if quick:
            scales, requests, restarts = [10, 100, 1000], {10: 20, 100: 20, 1000: 20}, 1
        else:
            scales = [10, 100, 1000, 3000]
            requests, restarts = {10: 40, 100: 40, 1000: 40, 3000: 40}, 3
        got = listing.measure(fx, scales, requests, restarts, log)
        rows += [r for r in got if r.number.rstrip("b") in rows_wanted]  # 2b comes with 2
    if rows_wanted & {"3", "11"}:
        with builds.server(fx) as srv:
            if "3" in rows_wanted:
                rows.append(builds.kernel_visible(srv, service, 3 if quick else 7, log))
            if "11" in rows_wanted:
                rows.append(builds.by_hand(srv, service, fx, 2 if quick else 5, log))
    if "8" in rows_wanted:
        rows.append(responsiveness.measure(fx, 100 if quick else 300, log))
    if "9" in rows_wanted:
        scales = [3000, 10000] if quick else [3000, 10000, 31000]
        rows.append(search.measure(service, scales, reps, log))
    if rows_wanted & {"20", "21"}:
        got = server_cpu.measure(
            fx, 1000 if quick else 3000, 2 if quick else 3, 10 if quick else 30, log
        )
        rows += [r for r in got if r.number in rows_wanted]
    rows.sort(key=lambda r: (int(r.number.rstrip("abcdefgh")), r.number))
    elapsed = time.monotonic() - started
    text = report(rows, quick, elapsed)
    print(text)
    if quick:
        target = common.WORK / "RESULTS-quick.md"
    elif rows_wanted != set(ROWS):
        target = common.WORK / "RESULTS-partial.md"
    else:
        target = common.BENCH / "RESULTS.md"
    target.write_text(text)
    log(f"written to {target}")
    common.cleanup()  # so that the next run does not start by deleting a large tree
    log("work tree cleaned (logs kept)")
    return 0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def machine() -> list[str]:
    from uv import find_uv_bin

    uv = subprocess.run([find_uv_bin(), "--version"], capture_output=True, text=True).stdout
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=common.REPO, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "jupyter_env_manager").splitlines()
    return [
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- code: commit {git('rev-parse', '--short', 'HEAD') or '?'}"
        + (f" + {len(changed)} uncommitted file(s) in jupyter_env_manager/" if changed else ""),
        f"- machine: nproc {os.cpu_count()}, {cpu}, {platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, py-rattler {_version('py-rattler')}, "
        f"{uv.strip() or 'uv ?'}, jupyter_server {_version('jupyter_server')}, "
        f"jupyter_env_manager {_version('jupyter_env_manager')}",
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def report(rows: list[common.Row], quick: bool, elapsed: float) -> str:
    mode = "quick (--quick: fewer repeats, small scales)" if quick else "full"
    lines = [
        "# Benchmark results",
        "",
        "Written by `python bench/run.py` (do not edit by hand). Ratios are against baselines",
        "measured in the same run; figures are medians (or the percentiles named) over repeats.",
        "",
        *machine(),
        f"- mode: {mode}; run time {elapsed:.0f} s",
        "",
        "| # | measure | ours | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.number} | {_cell(r.measure)} | {_cell(r.ours)} | {_cell(r.baseline)} | "
            f"{_cell(r.ratio)} | {_cell(r.goal)} | {met} |"
        )
    lines += ["", "## Notes", ""]
    for r in rows:
        for note in r.notes:
            lines.append(f"- {r.number}: {note}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
