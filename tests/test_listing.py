"""The environments list at scale (core/listing.py): cached views stay true when other
processes change the stores, the cache kept across restarts gives the same list, gzip.

The cache does not trust a directory changed within the last two seconds (a second change
could hide in the same mtime tick), so tests date the stores' metadata an hour back first: the
listing then really answers from its cache, and only a fingerprint can tell it what changed.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from helpers import build

from jupyter_env_manager.core.service import EnvService

NS = "env-manager"


def envmgr(*args: str) -> None:
    """The CLI in another process (as a terminal, the magics or a teammate's server)."""
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)


def age(*roots: str | Path) -> None:
    """Date every directory of the stores and the kernelspecs an hour back."""
    past = time.time() - 3600
    for root in roots:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.utime(os.path.join(dirpath, d), (past, past), follow_symlinks=False)
        os.utime(root, (past, past))


async def listed(jp_fetch) -> dict[str, dict]:
    response = await jp_fetch(NS, "environments", params={"scope": "local"})
    return {e["name"]: e for e in json.loads(response.body)["environments"]}


def server_service(jp_serverapp) -> EnvService:
    return jp_serverapp.web_app.settings["env_manager"]


async def post(jp_fetch, *path: str, body: dict | None = None):
    return await jp_fetch(NS, *path, method="POST", body=json.dumps(body or {}))


async def test_changes_by_another_process_are_in_the_next_listing(
    jp_fetch, jp_serverapp, envmgr_settings, config_file
):
    svc = server_service(jp_serverapp)
    for name in ("kept", "gone", "rebuilt"):
        await post(jp_fetch, "environments", body={"name": name})
    age(envmgr_settings["local_root"], svc.kernels.dir.parent)
    before = await listed(jp_fetch)
    assert before["rebuilt"]["status"] == "saved" and before["rebuilt"]["version"] is None
    cached = svc.listing._entries[("local", "rebuilt")]
    assert cached.stamps, "the listing did not cache the view: this test would prove nothing"
    assert (await listed(jp_fetch))["rebuilt"] is not None
    assert svc.listing._entries[("local", "rebuilt")] is cached  # answered from the cache

    envmgr("delete", "gone", "--yes")
    envmgr("create", "born", "--description", "made in a terminal")
    envmgr("build", "rebuilt")
    after = await listed(jp_fetch)
    assert "gone" not in after
    assert after["born"]["description"] == "made in a terminal"
    rebuilt = after["rebuilt"]
    assert rebuilt["status"] == "ready" and rebuilt["version"] == 1
    assert rebuilt["latest_build"]["status"] == "succeeded"
    assert "phases" not in rebuilt["latest_build"]  # the list sends what the panel shows
    assert rebuilt["kernel"]["active"] is True  # the build wrote it, in this user's directory
    assert rebuilt["actions"]["deactivate"]["allowed"] is True
    assert rebuilt["actions"]["copy_local"]["allowed"] is True
    assert rebuilt["packages"] > 0 and rebuilt["python_version"]
    # The environment's own GET has the phases, and agrees with the list otherwise.
    own = json.loads((await jp_fetch(NS, "environments", "local", "rebuilt")).body)
    assert own["latest_build"]["phases"]
    own["latest_build"].pop("phases")
    own.pop("versions")
    assert own == rebuilt

    # Actions follow this user's kernels, also when another process changes them.
    age(envmgr_settings["local_root"], svc.kernels.dir.parent)
    assert (await listed(jp_fetch))["rebuilt"]["kernel"]["active"] is True
    envmgr("deactivate", "rebuilt")
    off = (await listed(jp_fetch))["rebuilt"]
    assert off["kernel"]["active"] is False
    assert off["actions"]["activate"] == {"allowed": True, "reason": None}
    assert off["actions"]["deactivate"]["allowed"] is False


async def test_the_list_is_gzipped_when_the_client_accepts_it(jp_fetch):
    await post(jp_fetch, "environments", body={"name": "zipped"})
    plain = await jp_fetch(NS, "environments", decompress_response=False)
    assert "Content-Encoding" not in plain.headers
    zipped = await jp_fetch(
        NS, "environments", headers={"Accept-Encoding": "gzip"}, decompress_response=False
    )
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Type"].startswith("application/json")
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert json.loads(gzip.decompress(zipped.body)) == json.loads(plain.body)
    assert [e["name"] for e in json.loads(plain.body)["environments"]] == ["zipped"]


def test_a_restart_lists_from_the_kept_cache_and_sees_what_changed_meanwhile(
    service, envmgr_config, envmgr_settings, config_file
):
    from jupyter_env_manager.config import EnvManager

    for name in ("a", "b", "c"):
        service.envs.create({"name": name, "description": f"env {name}"})
    age(envmgr_settings["local_root"])
    first = service.envs.list("local")
    service.listing.save()
    cache = service.listing.cache_file
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600  # per-user reasons: this user's only

    envmgr("delete", "b", "--yes")  # while "the server is down"
    envmgr("create", "d")
    restarted = EnvService(EnvManager(config=envmgr_config))
    again = restarted.envs.list("local")
    # Unchanged environments came from the cache: their views were not read again.
    assert restarted.listing._entries[("local", "a")].base is None
    assert [e["name"] for e in again] == ["a", "c", "d"]
    assert [e for e in again if e["name"] in ("a", "c")] == [
        e for e in first if e["name"] in ("a", "c")
    ]
    # The same as a listing that reads everything.
    fresh = EnvService(EnvManager(config=envmgr_config))
    fresh.listing.cache_file = None
    assert fresh.envs.list("local") == again


def test_a_cache_of_other_stores_or_another_version_is_not_used(
    service, envmgr_config, envmgr_settings, config_file
):
    from jupyter_env_manager.config import EnvManager

    service.envs.create({"name": "x", "description": "true"})
    age(envmgr_settings["local_root"])
    service.envs.list()
    service.listing.save()
    cache = service.listing.cache_file
    lines = cache.read_text().splitlines()
    header = json.loads(lines[0])
    header["version"] = "0.0.0-other"
    forged = [line.replace('"true"', '"forged"') for line in lines[1:]]
    cache.write_text("\n".join([json.dumps(header), *forged]) + "\n")
    other = EnvService(EnvManager(config=envmgr_config))
    assert [e["description"] for e in other.envs.list("local")] == ["true"]


def test_disk_use_is_never_computed_by_a_listing_and_survives_a_restart(
    service, envmgr_config, envmgr_settings, config_file
):
    from jupyter_env_manager.config import EnvManager

    service.envs.create({"name": "du"})
    build(service, "local", "du")
    age(envmgr_settings["local_root"])
    assert service.envs.list("local")[0]["disk_bytes"] is None  # unknown: not computed here
    assert service.disk.refresh() == 1  # the server's background pass
    listed_bytes = service.envs.list("local")[0]["disk_bytes"]
    assert listed_bytes == service.disk.environment(service.local, "du") > 0
    service.listing.save()
    restarted = EnvService(EnvManager(config=envmgr_config))
    assert restarted.envs.list("local")[0]["disk_bytes"] == listed_bytes
    assert restarted.disk.refresh() == 0  # the figure came with the listing cache
