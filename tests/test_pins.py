"""Notebooks pinned to an environment version: real notebooks, real kernels, real builds.

``keep_versions`` is 1 here: a pinned version's directory stays only because of its pin, and
comes back from its lock when retention removed it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from helpers import build
from nbclient import NotebookClient
from test_shared_store import (
    ALICE,
    BOB,
    as_user,
    needs_users,
    team,  # noqa: F401 (a fixture)
)
from traitlets.config import Config

from jupyter_env_manager.config import EnvManager
from jupyter_env_manager.core.errors import Conflict, NotFound, ValidationError
from jupyter_env_manager.core.pins import lock_sha256
from jupyter_env_manager.core.retention import version_dirs
from jupyter_env_manager.core.service import EnvService
from jupyter_env_manager.core.verified import VERIFIED

CODE = (
    "import os, envmgr_hello\n"
    "print(open(os.path.join(os.environ['CONDA_PREFIX'], 'share/alpha/VERSION')).read().strip(),"
    " envmgr_hello.__version__)"
)


@pytest.fixture
def svc(envmgr_settings, config_file):
    settings = {**envmgr_settings, "keep_versions": 1}
    return EnvService(EnvManager(config=Config({"EnvManager": settings})))


def make_v1_then_v3(svc, name: str = "mv") -> None:
    svc.envs.create({"name": name, "conda": ["alpha=1.0"], "pip": ["envmgr-hello==1.0"]})
    assert build(svc, "local", name).status == "succeeded"


def upgrade(svc, name: str = "mv", times: int = 2) -> None:
    for _ in range(times):
        svc.envs.update("local", name, {"conda": ["alpha=2.0"], "pip": ["envmgr-hello==2.0"]})
        result = build(svc, "local", name)
        assert result.status == "succeeded", result.error


def notebook(path: Path, kernel: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(CODE))
    nbformat.write(nb, path)
    return path


def run(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, startup_timeout=120).execute()
    outputs = nb.cells[0].outputs
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream").strip()


def test_a_pinned_notebook_runs_its_version_after_rebuilds(svc, tmp_path):
    make_v1_then_v3(svc)
    nb = notebook(tmp_path / "analysis.ipynb", "envmgr-mv")
    assert run(nb) == "1.0 1.0"
    info = svc.pins.pin_notebook(nb)
    assert (info["version"], info["kernel_name"]) == (1, "envmgr-mv.v1")
    meta = json.loads(nb.read_text())["metadata"]
    assert meta["envmgr"] == {
        "scope": "local",
        "name": "mv",
        "version": 1,
        "lock_sha256": lock_sha256(svc.local, "mv", 1),
    }
    assert meta["kernelspec"]["name"] == "envmgr-mv.v1"
    upgrade(svc)  # v3 is in use; retention keeps v1's directory for the pin
    assert svc.local.active_version("mv") == 3
    assert [v for v, _, _ in version_dirs(svc.local, "mv")] == [1, 3]
    assert svc.envs.get("local", "mv")["pinned"] == [1]
    assert run(nb) == "1.0 1.0"  # nbclient, as papermill runs it
    out = tmp_path / "out.ipynb"
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(nb),
         "--output", str(out)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "1.0 1.0"
    # unpinned, it runs on the version in use again
    svc.pins.unpin_notebook(nb)
    assert "envmgr" not in json.loads(nb.read_text())["metadata"]
    assert run(nb) == "2.0 2.0"


def test_a_removed_pinned_version_comes_back_from_its_lock(svc, tmp_path):
    make_v1_then_v3(svc)
    nb = notebook(tmp_path / "nb.ipynb", "envmgr-mv")
    svc.pins.pin_notebook(nb)
    upgrade(svc, times=1)
    # the pin was not used for longer than pin_keep_s: gc removes v1's directory
    record = next((svc.local.meta / "pins" / "mv").glob("v1.*.json"))
    old = time.time() - svc.settings.pin_keep_s - 60
    os.utime(record, (old, old))
    done = svc.retention.collect()
    v1 = [d.name for v, _, d in version_dirs(svc.local, "mv") if v == 1]
    assert v1 == [] and list(done.removed) == ["local/mv"]
    # opening the notebook makes v1 again, from its lock, without solving
    assert run(nb) == "1.0 1.0"
    assert [v for v, _, _ in version_dirs(svc.local, "mv")] == [1, 2]
    log = (svc.builds.dir("local", "mv", 1) / "materialize.log").read_text()
    assert "materializing mv v1 from its lock" in log and "] solved " not in log


def test_a_tampered_lock_hash_is_refused_naming_both(svc, tmp_path):
    make_v1_then_v3(svc)
    nb = notebook(tmp_path / "nb.ipynb", "envmgr-mv")
    svc.pins.pin_notebook(nb)
    data = json.loads(nb.read_text())
    real = data["metadata"]["envmgr"]["lock_sha256"]
    data["metadata"]["envmgr"]["lock_sha256"] = "0" * 64
    nb.write_text(json.dumps(data))
    with pytest.raises(Conflict) as refused:
        svc.pins.check_notebook(nb)
    assert "0" * 64 in refused.value.message and real in refused.value.message
    # a kernel started for this notebook (as a Jupyter server does) shows why, in the notebook
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(
        kernel_name="envmgr-mv.v1",
        startup_timeout=120,
        env={**os.environ, "JPY_SESSION_NAME": str(nb)},
    )
    try:
        reply = kc.execute_interactive("print(1)", timeout=60)
        assert reply["content"]["status"] == "error"
        assert "0" * 64 in reply["content"]["evalue"] and real in reply["content"]["evalue"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_pin_whose_environment_is_gone_says_so_in_the_notebook(svc, tmp_path):
    make_v1_then_v3(svc)
    nb = notebook(tmp_path / "nb.ipynb", "envmgr-mv")
    svc.pins.pin_notebook(nb)
    svc.envs.delete("local", "mv")
    with pytest.raises(NotFound, match="no environment 'mv' any more"):
        svc.pins.check_notebook(nb)
    nbdata = nbformat.read(nb, as_version=4)
    client = NotebookClient(nbdata, timeout=60, startup_timeout=120, allow_errors=True)
    client.execute()
    error = next(o for o in nbdata.cells[0].outputs if o.output_type == "error")
    assert "no environment 'mv' any more" in error["evalue"]


def test_packages_gone_from_the_channel_are_named(envmgr_settings, config_file, tmp_path):
    channel = shutil.copytree(
        Path(envmgr_settings["channels"][0].removeprefix("file://")), tmp_path / "channel"
    )
    settings = {
        **envmgr_settings,
        "keep_versions": 1,
        "channels": [channel.as_uri()],
        "pkgs_dir": str(tmp_path / "pkgs"),  # its own cache: this test empties it
    }
    svc = EnvService(EnvManager(config=Config({"EnvManager": settings})))
    make_v1_then_v3(svc)
    upgrade(svc, times=1)
    svc.retention.collect()
    assert [v for v, _, _ in version_dirs(svc.local, "mv")] == [2]
    for archive in channel.rglob("alpha-1.0-*"):
        archive.unlink()
    for cached in Path(settings["pkgs_dir"]).glob("alpha-1.0-*"):
        shutil.rmtree(cached) if cached.is_dir() else cached.unlink()
    with pytest.raises(Conflict, match="cannot be made again from its lock") as refused:
        svc.pins.pin("local", "mv", 1)
    assert "alpha" in refused.value.message
    assert [v for v, _, _ in version_dirs(svc.local, "mv")] == [2]  # nothing half-made


def test_gc_keeps_pinned_and_in_use_versions_and_a_running_kernel(svc, tmp_path):
    from jupyter_client.manager import start_new_kernel

    make_v1_then_v3(svc)  # v1
    upgrade(svc, times=1)  # v2
    svc.pins.pin("local", "mv", 2)  # pinned while v2 is in use
    km, kc = start_new_kernel(kernel_name="envmgr-mv", startup_timeout=120)  # runs v2
    try:
        upgrade(svc, times=2)  # v3, v4
        listed = svc.retention.collect(dry_run=True)
        assert listed.removed == {} and [v for v, _, _ in version_dirs(svc.local, "mv")] == [2, 4]
        out = kc.execute_interactive("import envmgr_hello; print(envmgr_hello.__version__)")
        assert out["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_cli_pin_and_check_and_bad_input(svc, tmp_path, config_file):
    make_v1_then_v3(svc)
    nb = notebook(tmp_path / "nb.ipynb", "envmgr-mv")
    cli = [sys.executable, "-m", "jupyter_env_manager.cli"]
    done = subprocess.run([*cli, "pin", str(nb)], capture_output=True, text=True, check=True)
    assert "pinned" in done.stdout and "local/mv v1 (kernel envmgr-mv.v1)" in done.stdout
    shutil.rmtree(Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "envmgr-mv.v1")
    done = subprocess.run([*cli, "pin", str(nb), "--check"], capture_output=True, text=True)
    assert done.returncode == 0 and "runs on local/mv v1" in done.stdout
    assert (Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "envmgr-mv.v1").is_dir()
    bad = subprocess.run(
        [*cli, "pin", str(tmp_path / "none.ipynb")], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "No notebook" in bad.stderr
    with pytest.raises(ValidationError, match="is not pinned"):
        svc.pins.unpin_notebook(notebook(tmp_path / "plain.ipynb", "python3"))


async def test_pins_over_rest(jp_fetch, service, tmp_path):
    from tornado.httpclient import HTTPClientError

    async def post(path, body):
        try:
            r = await jp_fetch("env-manager", path, method="POST", body=json.dumps(body))
            return r.code, json.loads(r.body)
        except HTTPClientError as err:
            return err.code, json.loads(err.response.body)

    service.envs.create({"name": "mv", "conda": ["alpha=1.0"], "pip": ["envmgr-hello==1.0"]})
    assert build(service, "local", "mv").status == "succeeded"
    code, pin = await post("pins", {"name": "mv"})
    sha = lock_sha256(service.local, "mv", 1)
    assert code == 200 and pin == {
        "scope": "local",
        "name": "mv",
        "version": 1,
        "lock_sha256": sha,
        "kernel_name": "envmgr-mv.v1",
        "display_name": "mv v1 (pinned)",
        "materialized": False,
    }
    env = json.loads((await jp_fetch("env-manager", "environments", "local", "mv")).body)
    assert env["materialized"] == [1] and env["pinned"] == [1]
    code, checked = await post("pins/check", {"scope": "local", "name": "mv", "version": 1,
                                              "lock_sha256": sha})  # fmt: skip
    assert (code, checked["kernel_name"]) == (200, "envmgr-mv.v1")
    code, err = await post("pins/check", {"name": "mv", "version": 1, "lock_sha256": "a" * 64})
    assert code == 409 and "a" * 64 in err["message"] and sha in err["message"]
    code, err = await post("pins/check", {"name": "gone", "version": 1})
    assert code == 404 and "no environment 'gone'" in err["message"]
    code, err = await post("pins", {"name": "mv", "version": "1; rm"})
    assert code == 400 and err["field"] == "version"
    code, err = await post("pins", {"name": "../x"})
    assert code == 400 and err["field"] == "name"
    code, err = await post("pins", {"name": "mv", "extra": 1})
    assert code == 400 and err["field"] == "extra"
    code, done = await post("gc", {"dry_run": True})
    assert code == 200 and done == {"removed": {}, "kept_for_kernels": {}}
    code, err = await post("gc", {"dry_run": "yes"})
    assert code == 400 and err["field"] == "dry_run"


def test_du_matches_du_and_clean_frees_exactly_the_unreferenced(
    envmgr_settings, config_file, tmp_path
):
    settings = {**envmgr_settings, "keep_versions": 2, "pkgs_dir": str(tmp_path / "pkgs")}
    svc = EnvService(EnvManager(config=Config({"EnvManager": settings})))
    make_v1_then_v3(svc)  # v1: alpha 1.0
    upgrade(svc, times=1)  # v2: alpha 2.0 (and beta); both directories kept
    dirs = [str(p) for _, _, p in version_dirs(svc.local, "mv")]
    assert len(dirs) == 2
    du = subprocess.run(["du", "-scB1", *dirs], capture_output=True, text=True, check=True)
    expected = int(du.stdout.splitlines()[-1].split()[0])
    assert svc.disk.environment(svc.local, "mv") == expected
    assert svc.envs.get("local", "mv")["disk_bytes"] == expected  # cached: no walk on listing
    report = svc.disk.report("local")["stores"][0]
    assert report["environments"] == {"mv": expected} and report["bytes"] == expected
    # v1 goes (keep 1 now): alpha 1.0 is linked by no environment any more
    svc.settings.keep_versions = 1
    svc.retention.collect()
    assert svc.envs.get("local", "mv")["disk_bytes"] is None  # its directories changed
    pkgs = Path(settings["pkgs_dir"])
    alpha1 = sorted(p.name for p in pkgs.iterdir() if p.name.startswith("alpha-1.0-"))
    assert alpha1  # the extracted package and its archive
    # and what verify proved of v1's lock (alpha 1.0 in it); v2's stays
    proofs = pkgs / VERIFIED
    v1_proof = [f"{VERIFIED}/{p.name}" for p in proofs.iterdir() if "alpha-1.0-" in p.read_text()]
    assert len(v1_proof) == 1 and len(list(proofs.iterdir())) == 2
    listed = svc.disk.clean(dry_run=True)
    assert listed["removed"] == alpha1 + v1_proof and listed["freed_bytes"] > 0
    assert all((pkgs / name).exists() for name in alpha1 + v1_proof)
    before = {p.name for p in pkgs.iterdir()}
    done = svc.disk.clean()
    assert done["removed"] == alpha1 + v1_proof
    assert {p.name for p in pkgs.iterdir()} == before - set(alpha1)
    assert len(list(proofs.iterdir())) == 1
    # what is in use still builds from the cache, and runs
    assert run(notebook(tmp_path / "nb.ipynb", "envmgr-mv")) == "2.0 2.0"


@needs_users
def test_a_teammate_runs_the_pinned_version(team):  # noqa: F811
    config = team["config"] / "jupyter_server_config.json"
    settings = json.loads(config.read_text())
    settings["EnvManager"]["keep_versions"] = 1
    config.write_text(json.dumps(settings))
    as_user(
        team, ALICE, "create", "pv", "--shared", "--conda", "alpha=1.0", "--pip",
        "envmgr-hello==1.0", "--build",
    )  # fmt: skip
    notebooks = team["shared"].parent / "notebooks"
    notebooks.mkdir()
    os.chown(notebooks, pwd.getpwnam(ALICE).pw_uid, -1)
    nb = notebook(notebooks / "a.ipynb", "envmgr-shared-pv")
    os.chown(nb, pwd.getpwnam(ALICE).pw_uid, -1)
    as_user(team, ALICE, "pin", str(nb))
    assert json.loads(nb.read_text())["metadata"]["kernelspec"]["name"] == "envmgr-shared-pv.v1"
    as_user(team, ALICE, "install", "alpha=2.0", "--env", "pv", "--shared")  # v2 in use
    as_user(team, BOB, "pin", str(nb), "--check")  # Bob's server would do this on open
    out = pwd.getpwnam(BOB).pw_dir + "/out.ipynb"
    nbconvert = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                 str(nb), "--output", out]  # fmt: skip
    as_user(team, BOB, program=nbconvert)
    executed = json.loads(Path(out).read_text())
    assert "".join(executed["cells"][0]["outputs"][0]["text"]).strip() == "1.0 1.0"
