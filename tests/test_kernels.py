"""Kernelspecs: names one-to-one across scopes, activation values as conda keeps them, and one
environment's bad activation never stopping another's kernel (issue 10, defects 7 and 8).

Most tests use prefixes made by hand (a ``conda-meta`` directory is what makes a prefix; the
kernelspec needs nothing else); the ones that start kernels use real builds.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from helpers import build, run_in_kernel
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.core import kernel_sync, kernels
from jupyter_env_manager.core.spec import NAME_RE, RESERVED_NAMES
from jupyter_env_manager.testing.channel import PackageDef, build_channel

# jupyter_client's own rule for kernel names (kernelspec._kernel_name_pat)
KERNEL_NAME_RE = re.compile(r"^[a-z0-9._\-]+$", re.IGNORECASE)
TRICKY = [
    "x", "shared", "shared-", "shared-x", "shared-shared-x", "sharedx", "shared_x", "local",
    "local-x", "local-shared-x", "s", "shared--x", "x-shared-", "envmgr", "envmgr-shared-x",
]  # fmt: skip
ODD_VALUES = {
    "ODD_NEWLINE": "first line\nsecond line",
    "ODD_DOLLAR": "${HOME}/x $USER $$",
    "ODD_QUOTES": 'it\'s "quoted" \\ back`tick`',
    "ODD_EMPTY": "",
}


def names_to_check() -> list[str]:
    """The tricky names plus every valid name of up to 4 pieces of the tricky alphabet."""
    pieces = ["shared", "local", "-", "_", "x", ".", "envmgr"]
    generated = {
        "".join(combo) for n in range(1, 5) for combo in itertools.product(pieces, repeat=n)
    }
    return sorted(
        n for n in set(TRICKY) | generated if NAME_RE.fullmatch(n) and n not in RESERVED_NAMES
    )


def test_kernel_names_are_one_to_one_and_parse_back():
    names = names_to_check()
    seen: dict[str, tuple[str, str]] = {}
    for scope, name in itertools.product(("local", "shared"), names):
        kname = kernels.kernel_name(scope, name)
        assert KERNEL_NAME_RE.match(kname), kname
        assert kname not in seen, (kname, seen.get(kname), (scope, name))
        seen[kname] = (scope, name)
        assert kernels.parse_kernel_name(kname) == (scope, name)
    # Existing notebooks keep their kernels: the names of before, where they were unambiguous.
    assert kernels.kernel_name("local", "demo") == "envmgr-demo"
    assert kernels.kernel_name("shared", "demo") == "envmgr-shared-demo"
    assert kernels.kernel_name("local", "shared-x") == "envmgr-local.shared-x"
    # Any other string is ours only if kernel_name makes it: parse never guesses.
    alphabet = ["shared", "local", "-", ".", "x", "X"]
    candidates = {
        f"envmgr-{''.join(c)}" for n in range(5) for c in itertools.product(alphabet, repeat=n)
    }
    candidates |= {"python3", "envmgr", "envmgr-local.x", "envmgr-shared-", "envmgr-local.shared-"}
    parsed = 0
    for kname in candidates:
        result = kernels.parse_kernel_name(kname)
        if result is not None:
            assert kernels.kernel_name(*result) == kname, kname
            parsed += 1
    assert kernels.parse_kernel_name("envmgr-local.x") is None
    assert kernels.parse_kernel_name("envmgr-shared-") is None
    print(f"\nKERNEL NAMES: {len(seen)} (scope, name) pairs one-to-one; {len(candidates)} strings "
          f"parsed, {parsed} of them ours")  # fmt: skip


def prefix(root: str | Path, name: str, env_vars: dict | None = None) -> Path:
    """A conda prefix made by hand (as conda/mamba would leave one: conda-meta, env_vars.d)."""
    path = Path(root) / name
    (path / "conda-meta").mkdir(parents=True)
    if env_vars is not None:
        (path / "etc" / "conda" / "env_vars.d").mkdir(parents=True)
        (path / "etc" / "conda" / "env_vars.d" / "vars.json").write_text(json.dumps(env_vars))
    return path


def installed_prefixes() -> dict[str, str]:
    """kernel name -> CONDA_PREFIX of every kernelspec of ours."""
    return {
        k: json.loads((kernels.kernels_dir() / k / "kernel.json").read_text())["env"][
            "CONDA_PREFIX"
        ]
        for k in kernels.installed()
    }


def test_a_local_shared_name_keeps_its_own_kernel(service, envmgr_settings):
    """Defect 8: local ``shared-x`` took the kernel of shared ``x``, and deleting it removed
    the other's kernel."""
    mine = prefix(envmgr_settings["local_root"], "shared-x")
    team = prefix(envmgr_settings["shared_root"], "x")
    service.kernels.activate("local", "shared-x")
    service.kernels.activate("shared", "x")
    assert installed_prefixes() == {
        "envmgr-local.shared-x": str(mine),
        "envmgr-shared-x": str(team),
    }
    views = {(e["scope"], e["name"]): e["kernel"]["name"] for e in service.envs.list()}
    assert views == {
        ("local", "shared-x"): "envmgr-local.shared-x",
        ("shared", "x"): "envmgr-shared-x",
    }
    service.kernels.deactivate("local", "shared-x")
    assert installed_prefixes() == {"envmgr-shared-x": str(team)}

    # A kernelspec an older version left under the ambiguous name is migrated by sync.
    service.kernels.activate("local", "shared-x")
    shutil.copy(
        kernels.kernels_dir() / "envmgr-local.shared-x" / "kernel.json",
        kernels.kernels_dir() / "envmgr-shared-x" / "kernel.json",
    )  # what the last writer of the shared name (the local environment) left
    shutil.rmtree(kernels.kernels_dir() / "envmgr-local.shared-x")
    assert service.kernels.sync() == {
        "created": ["envmgr-local.shared-x"],
        "updated": ["envmgr-shared-x"],
        "removed": [],
        "failed": [],
    }
    assert installed_prefixes() == {
        "envmgr-local.shared-x": str(mine),
        "envmgr-shared-x": str(team),
    }


def test_one_environments_bad_activation_never_stops_another(service, envmgr_settings):
    """Defect 7: a newline in one environment's variable stopped every environment's sync."""
    root = envmgr_settings["local_root"]
    good = prefix(root, "good", {"GOOD": "yes"})
    odd = prefix(root, "odd", ODD_VALUES)
    broken = prefix(root, "broken", {"B": "1"})
    for name in ("good", "odd", "broken"):
        service.kernels.activate("local", name)
    spec = json.loads((kernels.kernels_dir() / "envmgr-odd" / "kernel.json").read_text())
    assert spec["env"]["ODD_NEWLINE"] == ODD_VALUES["ODD_NEWLINE"]
    assert spec["env"]["ODD_DOLLAR"] == "$${HOME}/x $$USER $$$$"  # jupyter_client: $$ -> $
    assert spec["env"]["PATH"] == f"{odd / 'bin'}:${{PATH}}"  # the one value expanded

    # An environment whose activation fails (rattler refuses its state file): it is reported,
    # the others are synced.
    (broken / "conda-meta" / "state").write_text('{"env_vars": ["not", "an", "object"]}')
    shutil.rmtree(kernels.kernels_dir())  # a restart that lost the kernelspecs
    result = service.kernels.sync()
    assert (result["created"], result["updated"], result["removed"]) == (
        ["envmgr-good", "envmgr-odd"],
        [],
        [],
    )
    [failed] = result["failed"]
    assert failed.startswith(
        "envmgr-broken: The kernel of local/broken cannot be written: its activation failed: "
    ), failed
    assert set(installed_prefixes()) == {"envmgr-good", "envmgr-odd"}
    assert installed_prefixes()["envmgr-good"] == str(good)

    # Asked for directly, the refusal is a clear error naming the environment; nothing written.
    nul = prefix(root, "nul", {"NUL_VALUE": "a\u0000b"})
    with pytest.raises(kernels.KernelError) as info:
        service.kernels.activate("local", "nul")
    assert info.value.message == (
        "The kernel of local/nul cannot be written: "
        "activation variable NUL_VALUE contains a NUL character"
    )
    assert not (kernels.kernels_dir() / "envmgr-nul").exists()
    assert "local/nul" not in json.loads(service.kernels._intents_path.read_text())
    assert nul.exists()


@pytest.fixture(scope="module")
def odd_channel(tmp_path_factory) -> str:
    """A channel of two packages whose env_vars.d values are odd, one of them unusable."""
    vars_d = "etc/conda/env_vars.d"
    packages = [
        PackageDef("oddvars", "1.0", files={f"{vars_d}/odd.json": json.dumps(ODD_VALUES)}),
        PackageDef("nulvar", "1.0", files={f"{vars_d}/nul.json": '{"NUL_VALUE": "a\\u0000b"}'}),
    ]
    path = tmp_path_factory.mktemp("odd-channel")
    return build_channel(path, extra=packages, defaults=False, host_packages=())


def test_values_reach_a_real_kernel_as_conda_keeps_them(service, test_channel, odd_channel):
    """Defect 7 and the ``$`` of issue 10 in a real build and a real kernel; an unusable value
    makes a warning in the build log, not a failed build."""
    channels = [test_channel, odd_channel]
    service.envs.create({"name": "odd", "conda": ["oddvars"], "channels": channels})
    assert build(service, "local", "odd").status == "succeeded"
    names = sorted(ODD_VALUES)
    code = f"import os, json; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    out, reply = run_in_kernel("envmgr-odd", code)
    assert reply["status"] == "ok", reply
    assert json.loads(out) == ODD_VALUES

    service.envs.create({"name": "nul", "conda": ["nulvar"], "channels": channels})
    done = build(service, "local", "nul")
    assert done.status == "succeeded", done.error
    log = service.builds.read_log("local", "nul", done.version)[0].decode()
    assert (
        "warning: The kernel of local/nul cannot be written: activation variable NUL_VALUE "
        "contains a NUL character"
    ) in log
    assert service.envs.get("local", "nul", versions=False)["status"] == "ready"
    assert set(kernels.installed()) == {"envmgr-odd"}


def test_sync_tightens_a_kernelspec_an_older_version_left_open(service, envmgr_settings):
    """Issue 10, defect 1: kernelspecs written 0666 in 0777 directories are repaired by the
    next sync (or write), to the user's own modes."""
    from jupyter_env_manager.core.access import home_mode

    prefix(envmgr_settings["local_root"], "demo")
    service.kernels.activate("local", "demo")
    kdir = kernels.kernels_dir() / "envmgr-demo"
    for path in (kernels.kernels_dir(), kdir, kdir / "pylib"):
        os.chmod(path, 0o777)
    os.chmod(kdir / "kernel.json", 0o666)
    assert service.kernels.sync()["updated"] == ["envmgr-demo"]
    for path in (kernels.kernels_dir(), kdir, kdir / "pylib"):
        assert stat.S_IMODE(path.stat().st_mode) == home_mode(directory=True), path
    assert stat.S_IMODE((kdir / "kernel.json").stat().st_mode) == home_mode()
    assert home_mode() & 0o022 == 0
    assert service.kernels.sync()["updated"] == []


def test_a_kernelspec_is_written_without_fsync_and_one_left_empty_is_rewritten(
    service, envmgr_settings, monkeypatch
):
    """Issue 14: kernel.json is derived from the store, so its write skips the fsync (a build's
    last step paid for it); what a machine crash may then leave, an empty kernel.json, reads as
    absent and the next sync writes it again."""
    prefix(envmgr_settings["local_root"], "demo")
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    service.kernels.activate("local", "demo")
    assert not [p for p in synced if p.startswith(str(kernels.kernels_dir()))], synced
    path = kernels.kernels_dir() / "envmgr-demo" / "kernel.json"
    written = path.read_text()
    path.write_text("")
    assert kernels.read_kernelspec("local", "demo") is None
    assert service.kernels.sync()["updated"] == ["envmgr-demo"]
    assert path.read_text() == written


async def test_activate_over_rest_names_the_reason(jp_fetch, envmgr_settings):
    """The REST door answers 409 with the reason, and writes nothing."""
    prefix(envmgr_settings["local_root"], "nul", {"NUL_VALUE": "a\u0000b"})
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "env-manager", "environments", "local", "nul", "activate", method="POST", body="{}"
        )
    assert info.value.code == 409
    assert json.loads(info.value.response.body) == {
        "message": "The kernel of local/nul cannot be written: "
        "activation variable NUL_VALUE contains a NUL character",
        "item": "nul",
    }
    assert not kernels.installed()


def test_a_deactivate_during_a_sync_is_not_undone(service, monkeypatch):
    """The watcher's sync and a request run in two threads: a kernel deactivated while a sync
    is writing kernelspecs stays deactivated (the two are serialized, also across processes)."""
    import threading

    service.envs.create({"name": "race", "conda": ["alpha"]})
    assert build(service, "local", "race").status == "succeeded"
    kernels.remove_kernelspec("local", "race")  # lost: the next sync writes it again
    entered, release = threading.Event(), threading.Event()
    real_write = kernels.write_kernelspec

    def slow_write(*args):
        entered.set()
        assert release.wait(60)
        return real_write(*args)

    monkeypatch.setattr(kernel_sync, "write_kernelspec", slow_write)
    sync = threading.Thread(target=service.kernels.sync)
    sync.start()
    assert entered.wait(60)
    deactivate = threading.Thread(target=service.kernels.deactivate, args=("local", "race"))
    deactivate.start()
    deactivate.join(2)  # a bound, not a check: unserialized, it is done by now
    release.set()
    sync.join(60)
    deactivate.join(60)
    assert "envmgr-race" not in kernels.installed()
    assert service.envs.get("local", "race")["kernel"]["active"] is False


def test_a_servers_kernelspecs_stay_where_they_were_when_it_started(
    service, envmgr_settings, monkeypatch, tmp_path
):
    """A sync or a request still running in a thread when the server stops (the test harness
    restores HOME and JUPYTER_DATA_DIR meanwhile) writes into the server's own kernelspec
    directory, never into whatever the environment names by then (CI found an ``envmgr-pk`` in
    the real user's directory)."""
    prefix(envmgr_settings["local_root"], "late")
    started = kernels.kernels_dir()
    assert service.kernels.dir == started
    moved = tmp_path / "moved-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(moved))
    assert kernels.kernels_dir() == moved / "kernels"  # what the environment says now
    service.kernels.activate("local", "late")
    assert (started / "envmgr-late" / "kernel.json").is_file()
    shutil.rmtree(started / "envmgr-late")  # lost: the next sync writes it again
    assert service.kernels.sync()["created"] == ["envmgr-late"]
    assert (started / "envmgr-late" / "kernel.json").is_file()
    assert service.envs.get("local", "late")["kernel"]["active"] is True
    assert not moved.exists()
    service.kernels.deactivate("local", "late")
    assert not (started / "envmgr-late").exists()
