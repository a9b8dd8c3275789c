"""schemathesis hooks of the FUZZ suite (tests/test_fuzz.py): loaded by the schemathesis CLI
through ``SCHEMATHESIS_HOOKS=fuzz_hooks``, never by pytest.

"Nothing created by a rejected request", checked per request: schemathesis runs one worker, so
requests are sequential. Before each request the stores are let settle (no build worker of the
server alive, no build.json saying queued/running, two equal snapshots in a row) and
snapshotted; after a 4xx they are let settle again and must be identical. Settling first is what
makes the comparison sound: a build started by an earlier 202 keeps writing in the background,
and those writes must not be blamed on (or hide behind) the request under test.

Snapshot: every directory and file under the local root, the shared root and the kernels
directory (a file by size and mtime, so a rewrite counts), plus ~/.conda/environments.txt's text.
Directory mtimes are left out: a temporary file made and removed leaves nothing created.
While no build is at work the server writes nothing by itself (the fuzz server runs with
``watch_interval_s = 0``), so one snapshot is enough then.

Hostile values: schema-driven generation rarely draws what broke the server before (a name
ending in a newline, a version ``²`` or ``١``, a 300-digit number, ``"build": "no"``, a YAML
alias bomb). ``flatmap_case`` offers, for each positive case, variants with one such value put
in a path parameter, the offset or one body field; every one of them must be refused (4xx, so
the no-change check applies) and never answer 5xx. Negative cases are left alone (a value put in
them could make them valid).

Figures (requests per operation and status, violations) go to ``$ENVMGR_FUZZ_STATS`` as JSON.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections import Counter
from pathlib import Path

import schemathesis
from hypothesis import strategies as st

from jupyter_env_manager.core.spare import SPARE_FLAG

WATCH = [Path(p) for p in json.loads(os.environ.get("ENVMGR_FUZZ_WATCH", "[]"))]
REGISTRY = Path(os.environ.get("ENVMGR_FUZZ_REGISTRY", "/nonexistent"))
SERVER_PID = int(os.environ.get("ENVMGR_FUZZ_SERVER_PID", "0"))
STATS_PATH = os.environ.get("ENVMGR_FUZZ_STATS")
SETTLE_TIMEOUT_S = 120.0
LIVE = ('"status": "queued"', '"status": "running"')

_state: dict = {"before": None, "violation": None}
_requests: Counter = Counter()
_statuses: Counter = Counter()
_violations: list[dict] = []
_unsettled = [0]
_hostile_ids: set[str] = set()
_hostile_sent: Counter = Counter()
_timing = {"settle_s": 0.0, "snapshots": 0, "last_busy": 0.0}


def snapshot() -> tuple[dict, bool]:
    """(the stores' state, whether a build is live according to its build.json)."""
    _timing["snapshots"] += 1
    state: dict = {}
    live = False
    stack = [str(root) for root in WATCH]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    state[entry.path] = "dir"
                    stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            state[entry.path] = (st.st_size, st.st_mtime_ns)
            if entry.name == "build.json":
                try:
                    text = Path(entry.path).read_text()
                except OSError:
                    continue
                live = live or any(marker in text for marker in LIVE)
    try:
        state[str(REGISTRY)] = REGISTRY.read_text()
    except FileNotFoundError:
        state[str(REGISTRY)] = None
    return state, live


def workers_alive() -> bool:
    """Whether the server has a build worker child (``python -m jupyter_env_manager.core.worker``)
    still at work. An idle spare (``--spare``, waiting for a build) is not; one that took a build
    is also seen through its build's status (``snapshot``)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid != SERVER_PID:
                continue
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            if b"jupyter_env_manager.core.worker" in argv and SPARE_FLAG.encode() not in argv:
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def settle() -> dict:
    """The stores' state once no build is at work. After a build was seen (in the last 5 s),
    also two equal snapshots in a row: the server cleans up after its worker exits."""
    start = time.monotonic()
    previous = None
    try:
        while True:
            busy = workers_alive()
            state, live = snapshot()
            now = time.monotonic()
            if busy or live:
                _timing["last_busy"] = now
            elif state == previous or now - _timing["last_busy"] > 5:
                return state
            if now - start > SETTLE_TIMEOUT_S:
                _unsettled[0] += 1
                return state
            previous = None if busy or live else state
            time.sleep(0.05 if previous is None else 0.02)
    finally:
        _timing["settle_s"] += time.monotonic() - start


ALIAS_BOMB = (
    "name: bomb\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "dependencies: [{pip: [*d]}]\n"
)
NAMES = ["demo\n", "abc\n", "demo\r", "d\u2028", 123]
# Values each body field must refuse (a 400 naming it); a value valid anywhere is not listed.
BODY = {
    "name": NAMES,
    "to": ["shared\n", 5],
    "scope": ["local\n", 5],
    "build": ["no", 1, "true"],
    "display_name": ["x\nchannels: [evil]", "a\u2028b", 5],
    "description": ["a\rb", 5],
    "python": ["3.\u0661\u0661", 5],
    "conda": [5, [5], ["a\nb"], ["-x"], ["python"]],
    "pip": [5, ["h @ https://example.org/h-1.0-py3-none-any.whl"], ["h @ git+https://e.org/h"]],
    "channels": [5, ["c\nd"], {"a": 1}],
    "base": [5, "local/abc\n"],
    "version": ["1", "\u00b2", True, 10**30, 1.5],
    "environment_yml": [
        ALIAS_BOMB,
        "name: x\na: " + "[" * 60 + "]" * 60 + "\n",
        "name: x\nchannels: 5\n",
        "name: x\ndependencies: [{pip: [5]}]\n",
        5,
    ],
    "colour": ["red"],
}
PATH = {
    "name": NAMES[:4],
    "version": ["\u00b2", "\u0661", "\uff11", "9" * 300, "0", "1\n"],
}
OFFSETS = ["9" * 30, "\u0661", "-1", "1e3"]


def _hostile_variants(case) -> list[tuple[str, str, list]]:
    """(where, key, values to try) for each place of this case a hostile value can go."""
    out: list[tuple[str, str, list]] = []
    for key, values in PATH.items():
        if key in (case.path_parameters or {}):
            out.append(("path", key, values))
    if case.path.endswith("/log"):
        out.append(("query", "offset", OFFSETS))
    if isinstance(case.body, dict):
        keys = set(case.body) | {"colour", "name"}
        if case.path == "/environments":
            keys |= {"build", "display_name"}
        for key in sorted(keys & set(BODY)):
            out.append(("body", key, BODY[key]))
    return out


def _apply(case, variant: tuple[str, str, object]):
    where, key, value = variant
    new = case.derive(keep_auth=True)
    if where == "path":
        new.path_parameters = {**case.path_parameters, key: value}
    elif where == "query":
        new.query = {**(case.query or {}), key: value}
    else:
        new.body = {**case.body, key: value}
    _hostile_ids.add(new.id)
    return new


@schemathesis.hook
def flatmap_case(context, case):
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode.is_positive
    variants = _hostile_variants(case) if positive else []
    if not variants:
        return st.just(case)
    # a place first, then a value: each place is tried about as often as the others
    hostile = st.sampled_from(variants).flatmap(
        lambda place: st.sampled_from(place[2]).map(lambda v: _apply(case, (*place[:2], v)))
    )
    return st.one_of(st.just(case), hostile)


def _changes(before: dict, after: dict) -> list[str]:
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k, "<absent>") != after.get(k, "<absent>"))


@schemathesis.hook
def before_call(context, case, kwargs):
    _state["before"] = settle()
    _state["violation"] = None


@schemathesis.hook
def after_call(context, case, response):
    label = f"{case.method.upper()} {case.path}"
    _requests[label] += 1
    if case.id in _hostile_ids:
        _hostile_sent[f"{label} {response.status_code}"] += 1
    _statuses[f"{label} {response.status_code}"] += 1
    if 400 <= response.status_code < 500 and _state["before"] is not None:
        changed = _changes(_state["before"], settle())
        if changed:
            violation = {
                "operation": label,
                "status": response.status_code,
                "url": response.request.url,
                "body": (case.body if isinstance(case.body, (dict, list, str)) else None),
                "changed": changed[:20],
            }
            _violations.append(violation)
            _state["violation"] = violation
    _state["before"] = None


UNREADABLE_CHANNEL = "Could not read the channels "


def unreadable_channel(case, response) -> bool:
    """The documented 502 of a package search whose channels cannot be read: the fuzz server is
    offline, and an environment the fuzz made may name conda-forge."""
    if response.status_code != 502 or case.method.upper() != "GET":
        return False
    if not case.path.endswith("/packages/search"):
        return False
    try:
        return json.loads(response.text)["message"].startswith(UNREADABLE_CHANNEL)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


@schemathesis.check
def no_server_error(ctx, response, case):
    """No 5xx (schemathesis' own check, less the one documented 502 above)."""
    if response.status_code >= 500 and not unreadable_channel(case, response):
        raise AssertionError(
            f"{case.method.upper()} {case.path} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    return None


@schemathesis.check
def nothing_created_by_a_4xx(ctx, response, case):
    """A request answered 4xx left the stores, kernels and environments.txt as they were."""
    violation = _state.get("violation")
    if violation:
        _state["violation"] = None
        raise AssertionError(
            f"{violation['operation']} answered {violation['status']} but changed: "
            + ", ".join(violation["changed"])
        )
    return None


@atexit.register
def _write_stats() -> None:
    if not STATS_PATH:
        return
    Path(STATS_PATH).write_text(
        json.dumps(
            {
                "requests": dict(_requests),
                "statuses": dict(_statuses),
                "violations": _violations,
                "unsettled": _unsettled[0],
                "hostile": dict(_hostile_sent),
                "settle_s": round(_timing["settle_s"], 1),
                "snapshots": _timing["snapshots"],
            },
            indent=1,
            default=str,
        )
    )
