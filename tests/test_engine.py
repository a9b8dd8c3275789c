"""The core engine for real: rattler builds from the local test channel, real kernels."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import build, execute, files_containing, run_in_kernel
from jupyter_client.manager import start_new_kernel

from jupyter_env_manager.config import EnvManager
from jupyter_env_manager.core import kernels
from jupyter_env_manager.core.errors import Conflict, NotFound, ValidationError
from jupyter_env_manager.core.runner import worker_argv
from jupyter_env_manager.core.service import EnvService
from jupyter_env_manager.core.store import Store


@pytest.fixture
def ready_env(service):
    """A built local environment with conda packages, activation scripts and a pip layer."""
    service.envs.create(
        {"name": "demo", "conda": ["alpha=1.0", "gamma", "delta"], "pip": ["envmgr-hello==1.0"]}
    )
    result = build(service, "local", "demo")
    assert result.status == "succeeded", result.error
    return service.envs.get("local", "demo")


def test_build_makes_a_complete_prefix_with_lock_and_kernel(service, ready_env):
    prefix = Path(ready_env["prefix"])
    assert ready_env["status"] == "ready" and ready_env["version"] == 1
    assert ready_env["python_version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    names = {p.name.rsplit("-", 2)[0] for p in (prefix / "conda-meta").glob("*.json")}
    assert {"python", "ipykernel", "alpha", "gamma", "delta"} <= names
    # records readable by the other users of a shared store; what was asked for is recorded
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in (prefix / "conda-meta").glob("*.json"))
    alpha_record = json.loads(next((prefix / "conda-meta").glob("alpha-*.json")).read_text())
    assert "alpha 1.0.*" in alpha_record["requested_specs"]
    # the prefix placeholder points at the final prefix, never at the staging directory
    real = prefix.resolve()  # the version's own directory, which never moves
    assert (prefix / "etc" / "gamma.conf").read_text().strip() == f"prefix={real}"
    assert files_containing(prefix, ".envmgr/staging") == []
    out = subprocess.run(
        [
            prefix / "bin" / "python",
            "-I",
            "-c",
            "import envmgr_hello; print(envmgr_hello.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1.0"
    lock = json.loads(service.envs.export("local", "demo", "lock")[0])
    alpha = next(e for e in lock["conda"] if e["name"] == "alpha")
    assert (
        alpha["version"] == "1.0"
        and len(alpha["sha256"]) == 64
        and alpha["url"].startswith("file://")
    )
    assert {"name": "envmgr-hello", "version": "1.0"} in lock["pip"]
    assert ready_env["packages"] == len(names) + 1
    # registered with conda, and as a kernel with the environment's metadata
    assert str(prefix) in (Path.home() / ".conda" / "environments.txt").read_text()
    spec = kernels.read_kernelspec("local", "demo")
    assert spec["metadata"]["env_manager"] == {"scope": "local", "name": "demo", "version": 1}
    assert ready_env["kernel"] == {"name": "envmgr-demo", "display_name": "demo", "active": True}
    b = service.builds.get("local", "demo", 1)
    assert [p["name"] for p in b.phases] == ["solve", "download", "link", "pip", "verify", "kernel"]
    assert b.user and b.started_at and b.finished_at
    log = service.builds.read_log("local", "demo", 1)[0].decode()
    assert "== solve ==" in log and "envmgr-hello==1.0" in log


def wait_for_output(kc, msg_id: str, text: str) -> None:
    """Until ``msg_id`` has printed ``text``: its cell is running (a SIGINT that comes before
    ipykernel installs its handler for the cell is ignored, as for an idle kernel)."""
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            if text in msg["content"]["text"]:
                return


def evaluate(kc, expression: str) -> str:
    """``expression``'s repr, from the execute reply's user_expressions."""
    reply = kc.execute_interactive("", user_expressions={"x": expression}, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    result = reply["content"]["user_expressions"]["x"]
    assert result["status"] == "ok", result
    return result["data"]["text/plain"]


def test_kernel_runs_activated_and_interrupts(service, ready_env):
    prefix = str(Path(ready_env["prefix"]).resolve())  # the version's own directory
    km, kc = start_new_kernel(kernel_name="envmgr-demo", startup_timeout=120)
    try:
        out, reply = execute(
            kc,
            "import os, sys\n"
            "print(sys.prefix)\n"
            "print(os.environ['PATH'].split(os.pathsep)[0])\n"
            "print(os.environ['CONDA_PREFIX'], os.environ['DELTA_VAR'],"
            " os.environ['DELTA_ACTIVATED'])\n"
            "print(os.environ['DELTA_HOME'])\n"
            "print(os.getpid())",
        )
        assert reply["status"] == "ok", reply
        lines = out.splitlines()
        assert lines[0] == prefix
        assert lines[1] == f"{prefix}/bin"
        assert lines[2] == f"{prefix} from-env-vars yes"
        assert lines[3] == f"{prefix}/share/delta"
        # no shell stays around the kernel: the process Jupyter started is the kernel
        assert int(lines[4]) == km.provisioner.process.pid
        # interrupt works as for a plain kernel
        # Short sleeps: the OS may hand a process's SIGINT to any of the kernel's threads, and
        # Python then raises KeyboardInterrupt in the main thread only once its current
        # blocking call returns (a single 60 s sleep would outlast the wait below).
        msg_id = kc.execute(
            "import time\nprint('asleep', flush=True)\nwhile True:\n    time.sleep(0.05)"
        )
        wait_for_output(kc, msg_id, "asleep")  # the kernel runs the cell (not a fixed sleep)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        # Values come back in the reply: a stream message may trail a busy machine's reply.
        assert evaluate(kc, "6 * 7") == "42"
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        assert evaluate(kc, "'after restart'") == "'after restart'"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize(
    "change, phase, message",
    [
        ({"conda": ["needs-missing"]}, "solve", "Could not solve"),
        (
            {"pip": ["envmgr-not-in-the-wheelhouse"]},
            "pip",
            "envmgr-not-in-the-wheelhouse was not found",
        ),
        ({"conda": ["badmod"]}, "verify", "cannot import"),
    ],
)
def test_failed_build_keeps_last_good_version(
    service, ready_env, envmgr_config, change, phase, message
):
    if phase == "verify":
        envmgr_config.EnvManager.kernel_packages = ["ipykernel", "badmod"]
        service = EnvService(EnvManager(config=envmgr_config))
    prefix = Path(ready_env["prefix"])
    before = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
    service.envs.update("local", "demo", change)
    result = build(service, "local", "demo")
    assert result.status == "failed"
    assert result.phase == phase and message in result.error
    env = service.envs.get("local", "demo")
    assert env["status"] == "failed" and env["version"] == 1
    assert sorted(p.name for p in (prefix / "conda-meta").glob("*.json")) == before
    assert [v["status"] for v in env["versions"]] == ["succeeded", "failed"]
    assert message in service.builds.read_log("local", "demo", 2)[0].decode()
    assert list(Store(service.local.root, "local").meta.joinpath("staging").iterdir()) == []
    out, reply = run_in_kernel("envmgr-demo", "print('still ok')")
    assert out.strip() == "still ok"


def test_second_build_is_a_conflict(service):
    service.envs.create({"name": "busy", "conda": ["alpha"]})
    first = service.builds.prepare("local", "busy")
    with pytest.raises(Conflict, match="already queued"):
        service.builds.prepare("local", "busy")
    from jupyter_env_manager.core.runner import run_foreground

    assert run_foreground(service, "local", "busy", first).status == "succeeded"
    assert build(service, "local", "busy").status == "succeeded"


def test_killed_build_is_interrupted_and_leaves_nothing(service, ready_env):
    service.envs.update("local", "demo", {"conda": ["alpha=2.0", "gamma", "delta"]})
    b = service.builds.prepare("local", "demo")
    build_dir = service.builds.dir("local", "demo", b.version)
    proc = subprocess.Popen(
        worker_argv(build_dir), stdout=subprocess.DEVNULL, start_new_session=True
    )
    for _ in range(200):
        if json.loads((build_dir / "build.json").read_text())["status"] == "running":
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # A fresh process (the next server start) sees the build as interrupted.
    fresh = EnvService(service.settings)
    fresh.recover()
    assert fresh.builds.get("local", "demo", b.version).status == "interrupted"
    env = fresh.envs.get("local", "demo")
    assert env["version"] == 1 and env["status"] == "failed"
    assert list(fresh.local.meta.joinpath("staging").iterdir()) == []
    assert "alpha-1.0" in " ".join(os.listdir(Path(env["prefix"]) / "conda-meta"))
    assert build(fresh, "local", "demo").status == "succeeded"


# A real worker with two probes: every os.fsync's file name, and each rattler HTTP client made.
_PROBED_WORKER = """
import os, runpy, sys
log = open(sys.argv.pop(1), "a", buffering=1)
real_fsync = os.fsync
def fsync(fd):
    log.write("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) + "\\n")
    real_fsync(fd)
os.fsync = fsync
from jupyter_env_manager.core import diagnose
real_client = diagnose.rattler_client
def rattler_client():
    log.write("client\\n")
    return real_client()
diagnose.rattler_client = rattler_client
sys.argv[0] = "worker"
runpy.run_module("jupyter_env_manager.core.worker", run_name="__main__")
"""


def test_worker_fsyncs_only_what_recovery_needs_and_makes_one_client(service, tmp_path):
    """Phase updates are atomic renames without fsync (a kill cannot lose them; the final
    status is durable); the running status, the swap journal and the final status are fsynced.
    The solve and the install share one HTTP client."""
    service.envs.create({"name": "probed", "conda": ["alpha=1.0"]})
    b = service.builds.prepare("local", "probed")
    build_dir = service.builds.dir("local", "probed", b.version)
    probes = tmp_path / "probes.txt"
    argv = [sys.executable, "-c", _PROBED_WORKER, str(probes), str(build_dir), b.id]
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, start_new_session=True)
    done = service.builds.get("local", "probed", b.version)
    assert done.status == "succeeded", done.error
    assert [p["name"] for p in done.phases] == ["solve", "download", "link", "verify", "kernel"]
    lines = probes.read_text().splitlines()
    fsynced = [line.split()[1].split(".")[1] for line in lines if line.startswith("fsync .")]
    assert fsynced.count("build") == 2  # running, then the final status; never a phase
    assert "swap" in fsynced  # the journal of the commit point stays durable
    assert lines.count("client") == 1


def test_crash_between_renames_restores_the_prefix(service, ready_env):
    store = service.local
    prefix = store.prefix("demo")
    # What swap_in leaves if the process dies right after moving the old prefix away:
    (store.env_dir("demo") / "swap.json").write_text(json.dumps({"version": 2, "staging": "/nope"}))
    store.trash.mkdir(exist_ok=True)
    os.rename(prefix, store.trash / "demo.dead1234")
    EnvService(service.settings).recover()
    assert (prefix / "conda-meta").is_dir()
    assert service.envs.get("local", "demo")["version"] == 1
    assert not (store.env_dir("demo") / "swap.json").exists()


def test_revert_reinstalls_exact_lock_without_solving(service, ready_env):
    service.envs.update(
        "local", "demo", {"conda": ["alpha=2.0", "gamma", "delta"], "pip": ["envmgr-hello==2.0"]}
    )
    assert build(service, "local", "demo").status == "succeeded"
    assert "alpha-2.0" in " ".join(os.listdir(Path(ready_env["prefix"]) / "conda-meta"))
    b = service.builds.revert("local", "demo", 1)
    from jupyter_env_manager.core.runner import run_foreground

    result = run_foreground(service, "local", "demo", b)
    assert result.status == "succeeded" and result.kind == "revert" and result.version == 3
    lock1 = json.loads((service.builds.dir("local", "demo", 1) / "lock.json").read_text())
    lock3 = json.loads((service.builds.dir("local", "demo", 3) / "lock.json").read_text())
    assert lock3 == lock1
    log = service.builds.read_log("local", "demo", 3)[0].decode()
    assert "reproducing the lock" in log and "] solved " not in log
    out, _ = run_in_kernel("envmgr-demo", "import envmgr_hello; print(envmgr_hello.__version__)")
    assert out.strip() == "1.0"
    # the spec goes back too: the next build and an export agree with what is in use
    spec = service.envs.get("local", "demo")["spec"]
    assert spec["conda"] == ["alpha=1.0", "gamma", "delta"] and spec["pip"] == ["envmgr-hello==1.0"]
    assert "envmgr-hello==1.0" in service.envs.export("local", "demo", "environment.yml")[0]
    with pytest.raises(ValidationError, match="it must be a version number"):
        service.builds.revert("local", "demo", "x")
    with pytest.raises(NotFound):
        service.builds.revert("local", "demo", 99)


def test_copy_to_shared_is_independent_of_its_source(service, ready_env):
    env, b = service.sharing.copy("local", "demo", "shared", "team-demo")
    from jupyter_env_manager.core.runner import run_foreground

    result = run_foreground(service, "shared", "team-demo", b)
    assert result.status == "succeeded", result.error
    copy = service.envs.get("shared", "team-demo")
    assert copy["origin"] == {"copied_from": {"scope": "local", "name": "demo", "version": 1}}
    src_lock = json.loads(service.envs.export("local", "demo", "lock")[0])
    assert json.loads(service.envs.export("shared", "team-demo", "lock")[0]) == src_lock
    source_dir = str(Path(ready_env["prefix"]).resolve())
    assert files_containing(Path(copy["prefix"]), ready_env["prefix"]) == []
    assert files_containing(Path(copy["prefix"]), source_dir) == []
    assert "] solved " not in service.builds.read_log("shared", "team-demo", 1)[0].decode()
    service.envs.delete("local", "demo")
    assert not os.path.lexists(ready_env["prefix"])
    assert not service.local.versions_dir("demo").exists()  # no kernel used it
    out, reply = run_in_kernel(
        "envmgr-shared-team-demo",
        "import os, envmgr_hello; print(envmgr_hello.__version__, os.environ['CONDA_PREFIX'])",
    )
    assert out.split() == ["1.0", str(Path(copy["prefix"]).resolve())]
    # and back to local under a new name
    env, b = service.sharing.copy("shared", "team-demo", "local", "mine")
    assert run_foreground(service, "local", "mine", b).status == "succeeded"
    with pytest.raises(ValidationError, match="needs a new name"):
        service.sharing.copy("local", "mine", "local")


def test_export_and_import_round_trip(service, ready_env):
    yml, content_type, _ = service.envs.export("local", "demo", "environment.yml")
    assert "alpha=1.0" in yml and "envmgr-hello==1.0" in yml and "pip:" in yml
    env, build = service.envs.import_({"name": "again", "environment_yml": yml})
    assert build is None  # not asked to build
    assert env["spec"]["conda"] == ["alpha=1.0", "gamma", "delta"]
    assert env["spec"]["pip"] == ["envmgr-hello==1.0"]
    explicit = service.envs.export("local", "demo", "explicit")[0]
    lines = explicit.splitlines()
    assert "@EXPLICIT" in lines and any(
        line.startswith("file://") and "alpha-1.0" in line for line in lines
    )
    assert "# pip: envmgr-hello==1.0" in lines
    with pytest.raises(ValidationError, match="Unknown export format"):
        service.envs.export("local", "demo", "zip")


@pytest.mark.parametrize(
    "body, field, item",
    [
        ({"name": "../etc"}, "name", "../etc"),
        ({"name": ".hidden"}, "name", ".hidden"),
        ({"name": "-rf"}, "name", "-rf"),
        ({"name": "base"}, "name", "base"),
        ({"name": "Upper"}, "name", "Upper"),
        ({"name": "x" * 33}, "name", "x" * 33),
        ({"name": "ok", "conda": ["--override-channels"]}, "conda", "--override-channels"),
        ({"name": "ok", "conda": ["numpy;rm -rf /"]}, "conda", "numpy;rm -rf /"),
        ({"name": "ok", "pip": ["--index-url=http://evil"]}, "pip", "--index-url=http://evil"),
        ({"name": "ok", "pip": ["not a requirement!"]}, "pip", "not a requirement!"),
        ({"name": "ok", "channels": ["../../x"]}, "channels", "../../x"),
        ({"name": "ok", "base": "missing"}, "base", "missing"),
        ({"name": "ok", "python": "3.11; echo"}, "python", None),
    ],
)
def test_bad_input_is_rejected_and_creates_nothing(service, body, field, item):
    with pytest.raises(ValidationError) as info:
        service.envs.create(body)
    assert info.value.field == field
    if item is not None:
        assert info.value.item == item and repr(item) in info.value.message
    root = service.local.root
    assert not root.exists() or [p.name for p in root.iterdir() if p.name != ".envmgr"] == []
    assert service.local.managed_names() == []


def test_prefix_length_limit(envmgr_config, tmp_path):
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    envmgr_config.EnvManager.local_root = str(deep)
    svc = EnvService(EnvManager(config=envmgr_config))
    with pytest.raises(ValidationError, match="conda packages allow at most 255"):
        svc.envs.create({"name": "a" * 30})
    assert svc.local.managed_names() == []


def test_unmanaged_env_is_listed_given_a_kernel_and_adopted(service, ready_env):
    # An environment conda made: a plain prefix in the local root, no metadata of ours.
    store = service.local
    os.rename(store.active_prefix("demo"), store.root / "byconda")
    os.unlink(store.prefix("demo"))
    listed = {e["name"]: e for e in service.envs.list("local")}
    assert listed["byconda"]["managed"] is False and listed["byconda"]["packages"] > 0
    env = service.kernels.activate("local", "byconda")
    assert env["kernel"]["active"] is True
    # our launcher resolves the prefix; then delta's activate.d script: bash sources it, then
    # execs the kernel
    argv = kernels.read_kernelspec("local", "byconda")["argv"]
    assert argv[:3] == [sys.executable, "-m", "jupyter_env_manager.core.launch"]
    assert argv[argv.index("--") + 1] == shutil.which("bash")
    adopted = service.envs.adopt("local", "byconda")
    assert adopted["managed"] is True and adopted["version"] == 1
    # the spec is what was asked for (conda-meta's requested specs), not every record
    assert adopted["spec"]["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert adopted["spec"]["conda"] == ["alpha 1.0.*", "delta", "gamma", "ipykernel"]
    lock = json.loads(service.envs.export("local", "byconda", "lock")[0])
    assert {e["name"] for e in lock["conda"]} >= {"alpha", "delta", "gamma", "python"}


def test_activate_deactivate_and_sync(service, ready_env):
    kdir = kernels.kernels_dir()
    env = service.kernels.deactivate("local", "demo")
    assert env["kernel"]["active"] is False and not (kdir / "envmgr-demo").exists()
    assert Path(ready_env["prefix"], "conda-meta").is_dir()
    assert service.kernels.sync()["created"] == []  # deactivated stays deactivated
    service.kernels.activate("local", "demo")
    # a restart that lost the kernelspecs: sync re-creates them
    shutil.rmtree(kdir / "envmgr-demo")
    (kdir / "envmgr-gone").mkdir()
    (kdir / "envmgr-gone" / "kernel.json").write_text("{}")
    result = service.kernels.sync()
    assert result["created"] == ["envmgr-demo"] and result["removed"] == ["envmgr-gone"]
    out, _ = run_in_kernel("envmgr-demo", "print('synced')")
    assert out.strip() == "synced"


def test_delete_removes_everything(service, ready_env):
    service.envs.delete("local", "demo")
    assert not os.path.lexists(ready_env["prefix"])
    assert not service.local.versions_dir("demo").exists()  # no kernel used it
    assert not service.local.env_dir("demo").exists()
    assert not (kernels.kernels_dir() / "envmgr-demo").exists()
    assert ready_env["prefix"] not in (Path.home() / ".conda" / "environments.txt").read_text()
    with pytest.raises(NotFound):
        service.envs.get("local", "demo")


def test_base_environment(service, ready_env):
    service.envs.create(
        {"name": "child", "base": "demo", "conda": ["beta"], "pip": ["envmgr-uses-dep"]}
    )
    assert build(service, "local", "child").status == "succeeded"
    child = service.envs.get("local", "child")
    names = {
        p.name.rsplit("-", 2)[0] for p in (Path(child["prefix"]) / "conda-meta").glob("*.json")
    }
    assert {"alpha", "gamma", "delta", "beta", "python", "ipykernel"} <= names
    lock = json.loads(service.envs.export("local", "child", "lock")[0])
    pip = {d["name"]: d["version"] for d in lock["pip"]}
    assert pip["envmgr-hello"] == "1.0" and "envmgr-uses-dep" in pip


def test_shared_scope_needs_a_shared_store(envmgr_config):
    envmgr_config.EnvManager.shared_root = None
    svc = EnvService(EnvManager(config=envmgr_config))
    with pytest.raises(ValidationError, match="No shared store is configured"):
        svc.envs.create({"scope": "shared", "name": "x"})
    assert svc.info()["shared_root"] is None


def test_listing_cache_follows_every_change(service, ready_env, monkeypatch):
    """Listing reuses unchanged views; any change on disk (from any process) shows at once."""
    import jupyter_env_manager.core.listing as listing_module

    # Pretend every file is old enough to cache (the real rule waits 2 s past a change).
    real_time_ns = time.time_ns
    monkeypatch.setattr(listing_module.time, "time_ns", lambda: real_time_ns() + 10**12)
    first = {e["name"]: e for e in service.envs.list("local")}["demo"]
    assert service.listing._entries[("local", "demo")].stamps  # kept: checked by its stamps
    assert {e["name"]: e for e in service.envs.list("local")}["demo"] == first
    # another process changes the spec, builds, deactivates the kernel: the listing follows
    other = EnvService(service.settings)
    other.envs.update("local", "demo", {"display_name": "Renamed"})
    assert service.envs.list("local")[0]["display_name"] == "Renamed"
    other.kernels.deactivate("local", "demo")
    assert service.envs.list("local")[0]["kernel"]["active"] is False
    assert build(other, "local", "demo").status == "succeeded"
    listed = service.envs.list("local")[0]
    assert listed["version"] == 2 and listed["latest_build"]["version"] == 2
