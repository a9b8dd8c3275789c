"""Row 7: how fast an activated kernel starts (row 3, how soon a kernel is listed, is in
builds.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import RUN, Row, build_env, median, ms


def _first_reply(kernel: str, check: bool) -> float:
    from jupyter_client.manager import start_new_kernel

    with open(RUN / "logs" / "kernels.log", "ab") as output:
        started = time.perf_counter()
        km, kc = start_new_kernel(
            kernel_name=kernel, startup_timeout=120, stdout=output, stderr=output
        )
    try:
        msg_id = kc.execute(
            "import os", user_expressions={"v": "os.environ.get('DELTA_ACTIVATED', '')"}
        )
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        seconds = time.perf_counter() - started
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{kernel}: execute failed: {reply['content']}")
        value = reply["content"]["user_expressions"]["v"]["data"]["text/plain"]
        if check and value != "'yes'":
            raise RuntimeError(f"{kernel}: activate.d did not run (DELTA_ACTIVATED={value})")
        return seconds
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def kernel_start(service, reps: int, log) -> Row:
    from jupyter_env_manager.core.kernels import kernel_name, kernels_dir

    build_env(service, "local", "activated", {"conda": ["delta"]})
    kernel = kernel_name("local", "activated")
    spec = json.loads((kernels_dir() / kernel / "kernel.json").read_text())
    argv = spec["argv"]
    if "--" not in argv or Path(argv[argv.index("--") + 1]).name != "bash":
        raise RuntimeError(f"expected a launcher + bash-activated kernelspec, got argv {argv}")
    python = str(service.local.active_prefix("activated") / "bin" / "python")
    plain = "bench-plain"
    (kernels_dir() / plain).mkdir(parents=True, exist_ok=True)
    (kernels_dir() / plain / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "plain (same interpreter, no activation)",
                "language": "python",
            }
        )
    )
    _first_reply(kernel, True)  # warm-up both (byte-code, page cache)
    _first_reply(plain, False)
    ours, plain_times = [], []
    for i in range(reps):  # A,B then B,A: neither always follows the other's shutdown
        for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
            if which == "A":
                ours.append(_first_reply(kernel, True))
            else:
                plain_times.append(_first_reply(plain, False))
    ratios = [a / b for a, b in zip(ours, plain_times, strict=True)]
    ratio = median(ratios)
    log(f"kernel start: activated {ms(median(ours))} vs plain {ms(median(plain_times))}")
    return Row(
        "7",
        "kernel start to first execute reply, env with activate.d + env_vars.d (bash + exec)",
        f"median {ms(median(ours))}",
        f"plain kernelspec {ms(median(plain_times))}",
        f"{ratio:.3f}× (median of {reps} A/B pairs)",
        "≤ 1.1×",
        ratio <= 1.1,
        [
            f"pair ratios: {', '.join(f'{r:.3f}' for r in ratios)}; "
            "activation checked in every start (DELTA_ACTIVATED set by activate.d)"
        ],
    )
