"""The watcher's rounds cost what changed, not what exists (issue 14): hot environments are
looked at every round, quiet ones in slices (a change seen within ``quiet_rounds`` rounds), only
the environments that changed are re-synced, and activation is computed once per prefix state.

The rounds are driven by hand (``run_round``), so nothing here waits for time. Prefixes are made
by hand (a ``conda-meta`` folder makes one); their kernels are activated as for conda-made ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_env_manager.core import activation, kernel_sync, kernels
from jupyter_env_manager.core.watcher import StoreWatcher

N = 24
QUIET = 6


def make_prefixes(root: str, n: int = N) -> list[str]:
    names = [f"e{i:02d}" for i in range(n)]
    for name in names:
        (Path(root) / name / "conda-meta").mkdir(parents=True)
    return names


_TICKS = iter(range(10**9, 2 * 10**9))


def change(root: str, name: str, what: str) -> None:
    """What conda does to a prefix when it installs a package: a new record in conda-meta.
    Its folder's mtime is then set to a value of its own: two changes within one tick of the
    machine's clock (a few ms) would otherwise leave the same mtime."""
    meta = Path(root) / name / "conda-meta"
    (meta / f"{what}.json").write_text("{}")
    tick = next(_TICKS)
    os.utime(meta, ns=(tick, tick))


def updated(events, name: str) -> bool:
    return ("environment", {"action": "updated", "scope": "local", "name": name}) in events


@pytest.fixture
def watched(service, envmgr_settings):
    root = envmgr_settings["local_root"]
    names = make_prefixes(root)
    for name in names:
        service.kernels.activate("local", name)
    watcher = StoreWatcher(service, interval_s=1, quiet_rounds=QUIET)
    watcher.prime()
    return watcher, root, names


def test_a_round_looks_at_one_slice_of_the_quiet_environments(watched):
    watcher, _root, names = watched
    looked = []
    for _ in range(QUIET):
        assert watcher.run_round() == []
        looked.append(watcher.looked)
    # Each quiet environment once in QUIET rounds: the rounds' slices add up to all of them.
    assert sum(looked) == len(names)
    assert max(looked) < len(names)


def test_a_hot_change_is_seen_at_the_next_round(watched):
    watcher, root, _names = watched
    watcher.notice("environment", {"scope": "local", "name": "e03"})  # this server acted on it
    watcher.run_round()
    change(root, "e03", "first")
    assert updated(watcher.run_round(), "e03")
    # Having changed, it stays hot: the next change is seen at the next round too.
    change(root, "e03", "second")
    assert updated(watcher.run_round(), "e03")


def test_a_quiet_change_is_seen_within_its_bound(watched):
    watcher, root, _names = watched
    change(root, "e17", "quietly")
    seen_at = None
    for n in range(1, QUIET + 1):
        if updated(watcher.run_round(), "e17"):
            seen_at = n
            break
    assert seen_at is not None, f"not seen within {QUIET} rounds"


def test_created_and_deleted_environments_are_seen_at_the_next_round(watched, service):
    watcher, root, _names = watched
    (Path(root) / "fresh" / "conda-meta").mkdir(parents=True)
    events = watcher.run_round()
    assert ("environment", {"action": "created", "scope": "local", "name": "fresh"}) in events
    service.kernels.activate("local", "e05")
    (Path(root) / "e05" / "conda-meta").rename(Path(root) / "e05" / "gone")
    events = watcher.run_round()
    assert ("environment", {"action": "deleted", "scope": "local", "name": "e05"}) in events
    # Its kernelspec went with it (a sync of that one environment).
    assert "envmgr-e05" not in kernels.installed()


def test_a_round_that_fails_is_done_again_in_full(watched, monkeypatch):
    """A round changes what it remembers only once it has its events: one that fails midway
    (a store on a flaky mount) loses no change; the next round reports it."""
    watcher, root, _names = watched
    watcher.notice("environment", {"scope": "local", "name": "e08"})
    watcher.run_round()
    change(root, "e08", "during-a-bad-round")
    (Path(root) / "late" / "conda-meta").mkdir(parents=True)

    def flaky(*_args):
        raise OSError("stale file handle")

    monkeypatch.setattr(watcher, "_build_change", flaky)
    with pytest.raises(OSError):
        watcher.run_round()
    monkeypatch.undo()
    events = watcher.run_round()
    assert updated(events, "e08")
    assert ("environment", {"action": "created", "scope": "local", "name": "late"}) in events


def test_sync_only_touches_the_environments_named(watched, service, monkeypatch):
    _watcher, _root, _names = watched
    for name in ("e01", "e02"):
        kernels.remove_kernel(kernels.kernel_name("local", name))
    checked = []
    real = kernels.is_current

    def counting(scope, name, *args, **kwargs):
        checked.append(name)
        return real(scope, name, *args, **kwargs)

    monkeypatch.setattr(kernel_sync, "is_current", counting)
    done = service.kernels.sync(only={("local", "e01")})
    assert done["created"] == ["envmgr-e01"] and checked == ["e01"]
    assert "envmgr-e02" not in kernels.installed()
    # An environment named that is gone: only its kernelspec goes, none of the others'.
    (Path(_root) / "e04" / "conda-meta").rename(Path(_root) / "e04" / "gone")
    done = service.kernels.sync(only={("local", "e04")})
    assert done["removed"] == ["envmgr-e04"]
    # The full sync (the server's start) still sees everything.
    checked.clear()
    done = service.kernels.sync()
    assert done["created"] == ["envmgr-e02"] and len(checked) == N - 1


def test_a_changed_environment_is_synced_by_the_watcher(watched, service):
    watcher, root, _names = watched
    watcher.notice("environment", {"scope": "local", "name": "e06"})
    watcher.run_round()
    kernels.remove_kernel("envmgr-e06")  # lost, then its environment changes
    kernels.remove_kernel("envmgr-e07")  # lost, and nothing changes: left for the next start
    change(root, "e06", "pkg")
    watcher.run_round()
    installed = kernels.installed()
    assert "envmgr-e06" in installed and "envmgr-e07" not in installed


def settle(prefix: Path) -> None:
    """Make every path under the prefix look written long ago (the cache keeps an activation
    only once its inputs have not changed for 2 s)."""
    for path in [prefix, *prefix.rglob("*")]:
        os.utime(path, ns=(10**18, 10**18))


def test_activation_is_computed_once_per_state_of_its_inputs(service, envmgr_settings, monkeypatch):
    prefix = Path(envmgr_settings["local_root"]) / "act"
    vars_dir = prefix / "etc" / "conda" / "env_vars.d"
    vars_dir.mkdir(parents=True)
    (prefix / "conda-meta").mkdir()
    (vars_dir / "vars.json").write_text(json.dumps({"MY_VAR": "one"}))
    computed = []
    real = activation._compute_activation
    monkeypatch.setattr(activation, "_compute_activation", lambda p: computed.append(p) or real(p))
    activation.activation(prefix)
    activation.activation(prefix)
    assert len(computed) == 2  # inputs written just now: not remembered yet
    settle(prefix)
    first = activation.activation(prefix)
    again = activation.activation(prefix)
    assert first.env["MY_VAR"] == again.env["MY_VAR"] == "one" and len(computed) == 3
    again.env["MY_VAR"] = "changed by a caller"  # a copy: the cache keeps its own
    assert activation.activation(prefix).env["MY_VAR"] == "one" and len(computed) == 3
    # A variable file rewritten in place (its folder's mtime unchanged): recomputed.
    with open(vars_dir / "vars.json", "w") as f:
        f.write(json.dumps({"MY_VAR": "two, longer"}))
    settle(prefix)
    assert activation.activation(prefix).env["MY_VAR"] == "two, longer" and len(computed) == 4
    # An activation script added: recomputed, and the script is there.
    (prefix / "etc" / "conda" / "activate.d").mkdir()
    (prefix / "etc" / "conda" / "activate.d" / "x.sh").write_text("export X=1\n")
    settle(prefix)
    assert activation.activation(prefix).scripts and len(computed) == 5
    os.utime(prefix / "conda-meta", ns=(1, 1))  # a package installed: conda-meta's mtime moves
    activation.activation(prefix)
    assert len(computed) == 6


def test_the_stores_are_listed_again_only_when_their_folders_changed(watched, service):
    """A round lists a store again only when its metadata folder or its root changed; a folder
    conda made in the root becomes an environment when its conda-meta appears."""
    watcher, root, _names = watched
    store = service.local
    old = 10**18
    (Path(root) / "late").mkdir()  # conda makes the prefix's folder, then conda-meta in it
    for folder in (Path(root), store.meta / "envs"):
        os.utime(folder, ns=(old, old))  # not changed lately: the listing can be kept
    assert watcher.run_round() == []
    listing = watcher._listings["local"]
    assert watcher.run_round() == [] and watcher._listings["local"] is listing  # kept
    (Path(root) / "late" / "conda-meta").mkdir()
    os.utime(Path(root), ns=(old, old))  # the root's mtime did not move (conda-meta is deeper)
    events = watcher.run_round()
    assert ("environment", {"action": "created", "scope": "local", "name": "late"}) in events
    service.envs.create({"name": "managed"})  # a new folder in the metadata: listed again
    events = watcher.run_round()
    assert ("environment", {"action": "created", "scope": "local", "name": "managed"}) in events


def test_a_root_changed_with_the_same_environments_keeps_their_names(watched):
    """A version switched in replaces a symlink in the store's root, so the root is listed
    again; with no environment come or gone, the round keeps the names it had and compares no
    sets of every environment (at each build's end, with thousands of environments)."""
    watcher, root, _names = watched
    names = watcher.names()
    assert watcher.run_round() == []
    switching = Path(root) / ".e03.switch"  # a switch makes one, renames it over the old
    switching.symlink_to("e03")
    switching.unlink()
    assert watcher.run_round() == []
    assert watcher._listings["local"].stamp[1] == os.stat(root).st_mtime_ns  # listed again
    assert watcher.names() is names
    (Path(root) / "fresh" / "conda-meta").mkdir(parents=True)  # one more: new names
    assert ("environment", {"action": "created", "scope": "local", "name": "fresh"}) in (
        watcher.run_round()
    )
    assert ("local", "fresh") in watcher.names() and watcher.names() is not names
