"""The environments list at scale (core/listing.py): cached views stay true when other
processes change the stores, the cache kept across restarts gives the same list, gzip.

The cache does not trust a directory changed within the last two seconds (a second change
could hide in the same mtime tick), so tests date the stores' metadata an hour back first: the
listing then really answers from its cache, and only a fingerprint can tell it what changed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
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


def compact_fragments_made(monkeypatch) -> list[str]:
    """The full fragments that compact ones are made from, from now on (in this process)."""
    from jupyter_env_manager.core import listing

    made: list[str] = []
    real = listing.compact_fragment
    monkeypatch.setattr(
        listing,
        "compact_fragment",
        lambda fragment, reasons: made.append(fragment) or real(fragment, reasons),
    )
    return made


def test_a_restart_keeps_the_compact_lists_and_the_reasons_they_number(
    service, envmgr_config, envmgr_settings, config_file, monkeypatch
):
    """Compact fragments come with the cache (making them again was half of a restart's first
    lists at 3,000 environments), numbered by the reasons kept with them: a fragment made after
    the restart numbers its reasons in the same table."""
    from jupyter_env_manager.config import EnvManager

    for name in ("a", "b"):
        service.envs.create({"name": name})
    age(envmgr_settings["local_root"])
    before = service.listing.response("local", "compact")
    service.listing.save()
    made = compact_fragments_made(monkeypatch)
    restarted = EnvService(EnvManager(config=envmgr_config))
    assert restarted.listing.response("local", "compact").data == before.data
    assert made == []  # every compact fragment came with the cache
    envmgr("create", "c")  # while it runs, by another process
    build(restarted, "local", "c")
    after = restarted.listing.response("local", "compact")
    assert any('"name":"c"' in fragment for fragment in made)  # numbered after the restart
    fresh = EnvService(EnvManager(config=envmgr_config))
    fresh.listing.cache_file = None
    full = json.loads(fresh.listing.response("local").data)["environments"]
    assert expanded(after.data) == full
    assert (
        json.loads(after.data)["reasons"][: len(json.loads(before.data)["reasons"])]
        == (json.loads(before.data)["reasons"])
    )


def test_the_cache_holds_compact_fragments_the_panel_never_asked_for(
    service, envmgr_config, envmgr_settings, config_file, monkeypatch
):
    """A server left alone makes fragments again (its disk use pass) with no panel asking for
    the compact list: the cache it writes still holds every compact fragment, so that the next
    start does not make them all."""
    from jupyter_env_manager.config import EnvManager

    for name in ("a", "b"):
        service.envs.create({"name": name})
    age(envmgr_settings["local_root"])
    service.listing.response("local")  # the full list only
    service.listing.save()
    made = compact_fragments_made(monkeypatch)
    restarted = EnvService(EnvManager(config=envmgr_config))
    panel = restarted.listing.response("local", "compact").data
    assert made == []  # every compact fragment came with the cache
    fresh = EnvService(EnvManager(config=envmgr_config))
    fresh.listing.cache_file = None
    full = json.loads(fresh.listing.response("local").data)["environments"]
    assert expanded(panel) == full and len(full) == 2


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


@pytest.mark.parametrize("reasons", ['["same","same"]', '{"not":"a list"}', "[1]", "oops"])
def test_a_cache_whose_reasons_are_broken_is_not_used(
    service, envmgr_config, envmgr_settings, config_file, reasons
):
    """Its compact fragments would number reasons that are not there: the records are read."""
    from jupyter_env_manager.config import EnvManager

    service.envs.create({"name": "x", "description": "true"})
    age(envmgr_settings["local_root"])
    before = service.listing.response("local", "compact")
    service.listing.save()
    cache = service.listing.cache_file
    lines = cache.read_text().splitlines()
    assert json.loads(lines[1]), "no reasons were kept: this test would prove nothing"
    forged = [line.replace('"true"', '"forged"') for line in lines[2:]]
    cache.write_text("\n".join([lines[0], reasons, *forged]) + "\n")
    other = EnvService(EnvManager(config=envmgr_config))
    again = other.listing.response("local", "compact")
    assert [e["description"] for e in json.loads(again.data)["environments"]] == ["true"]
    assert expanded(again.data) == expanded(before.data)


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


# -- the response: made once per change, ETag, 304 ---------------------------------------------


async def get_list(jp_fetch, **headers: str):
    """GET environments as sent (not decompressed; a 304 is an answer, not an error)."""
    return await jp_fetch(
        NS, "environments", headers=headers, decompress_response=False, raise_error=False
    )


async def test_an_unchanged_list_is_the_same_response_and_a_client_that_has_it_gets_304(
    jp_fetch, jp_serverapp, envmgr_settings
):
    svc = server_service(jp_serverapp)
    for name in ("one", "two"):
        await post(jp_fetch, "environments", body={"name": name})
    age(envmgr_settings["local_root"], svc.kernels.dir.parent)
    first = await get_list(jp_fetch, **{"Accept-Encoding": "gzip"})
    made = svc.listing._responses[(None, "full")]
    second = await get_list(jp_fetch, **{"Accept-Encoding": "gzip"})
    plain = await get_list(jp_fetch)
    assert first.code == second.code == plain.code == 200
    # Made once: the same response (its gzip too) answers every request while nothing changed.
    assert svc.listing._responses[(None, "full")] is made and made.compressed is not None
    assert first.body == second.body == made.compressed
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and second.headers["ETag"] == plain.headers["ETag"] == etag
    assert json.loads(gzip.decompress(first.body)) == json.loads(plain.body)
    assert [e["name"] for e in json.loads(plain.body)["environments"]] == ["one", "two"]
    assert first.headers["Cache-Control"] == "private, no-cache"  # kept, asked again

    for sent in (etag, etag[2:], f'"other", {etag}', "*"):  # weak comparison, lists, any
        again = await get_list(jp_fetch, **{"If-None-Match": sent, "Accept-Encoding": "gzip"})
        assert again.code == 304, sent
        assert again.body == b"" and again.headers["ETag"] == etag
        assert "Content-Encoding" not in again.headers
    other = await get_list(jp_fetch, **{"If-None-Match": '"not-this-one"'})
    assert other.code == 200 and other.body == plain.body


def test_if_none_match_is_read_as_http_says():
    from jupyter_env_manager.core.listing import Response

    response = Response([], b'{"environments": []}')
    etag = response.etag
    for sent in (etag, etag[2:], f'W/"x", {etag}', f'"x",{etag}', " * "):
        assert response.matches(sent), sent
    for sent in (None, "", '"x"', "a*b", etag[3:-1], f'"{etag}"'):
        assert not response.matches(sent), sent


async def test_a_change_by_another_process_changes_the_etag_and_the_body(
    jp_fetch, jp_serverapp, envmgr_settings, config_file
):
    from jupyter_env_manager.core.store import Store

    svc = server_service(jp_serverapp)
    await post(jp_fetch, "environments", body={"name": "edited", "description": "before"})
    age(envmgr_settings["local_root"], svc.kernels.dir.parent)
    before = await get_list(jp_fetch)
    etag = before.headers["ETag"]
    assert svc.listing._entries[("local", "edited")].stamps  # cached: only an mtime can tell

    # Another writer (a Store of this test, as the CLI or a teammate's server would be).
    store = Store(envmgr_settings["local_root"], "local")
    record = store.read_env("edited")
    record.spec.description = "after"
    store.write_env("edited", record)
    after = await get_list(jp_fetch, **{"If-None-Match": etag})
    assert after.code == 200 and after.headers["ETag"] != etag
    assert json.loads(after.body)["environments"][0]["description"] == "after"

    envmgr("create", "born")  # the CLI, another process
    born = await get_list(jp_fetch, **{"If-None-Match": after.headers["ETag"]})
    assert born.code == 200
    assert [e["name"] for e in json.loads(born.body)["environments"]] == ["born", "edited"]


async def test_a_view_read_again_to_the_same_text_keeps_the_response(
    jp_fetch, jp_serverapp, envmgr_settings
):
    svc = server_service(jp_serverapp)
    await post(jp_fetch, "environments", body={"name": "same"})
    age(envmgr_settings["local_root"], svc.kernels.dir.parent)
    first = await get_list(jp_fetch, **{"Accept-Encoding": "gzip"})
    made = svc.listing._responses[(None, "full")]
    entry = svc.listing._entries[("local", "same")]
    age(envmgr_settings["local_root"])  # its mtimes move (an hour back again): read again
    again = await get_list(jp_fetch, **{"If-None-Match": first.headers["ETag"]})
    assert svc.listing._entries[("local", "same")] is not entry  # the view was read again
    assert again.code == 304  # to the same text: the same response, its ETag and its gzip
    assert svc.listing._responses[(None, "full")] is made


@pytest.fixture
def no_background_disk_use(envmgr_settings):
    """The server's periodic pass (retention, then disk use) off: the test runs it itself."""
    envmgr_settings["retention_interval_s"] = 0


async def test_per_user_inputs_change_the_list_disk_use_and_kernels(
    no_background_disk_use, jp_fetch, jp_serverapp, envmgr_settings, config_file
):
    svc = server_service(jp_serverapp)
    await post(jp_fetch, "environments", body={"name": "k"})
    await post(jp_fetch, "environments", "local", "k", "builds")
    deadline = time.monotonic() + 300
    while (await listed(jp_fetch))["k"]["status"] == "building":
        assert time.monotonic() < deadline, "the build did not end"
        await asyncio.sleep(0.05)
    assert (await listed(jp_fetch))["k"]["latest_build"]["status"] == "succeeded"
    age(envmgr_settings["local_root"], svc.kernels.dir.parent)
    before = await get_list(jp_fetch)
    view = json.loads(before.body)["environments"][0]
    assert view["disk_bytes"] is None and view["kernel"]["active"] is True

    # Disk use: computed by the server's background pass (run here), no file of the env moved.
    generation = svc.disk.generation
    assert await asyncio.to_thread(svc.disk.refresh) == 1
    assert svc.disk.generation != generation
    sized = await get_list(jp_fetch, **{"If-None-Match": before.headers["ETag"]})
    assert sized.code == 200 and sized.headers["ETag"] != before.headers["ETag"]
    assert json.loads(sized.body)["environments"][0]["disk_bytes"] > 0

    # This user's kernel, hidden and shown again by another process.
    envmgr("deactivate", "k")
    hidden = await get_list(jp_fetch, **{"If-None-Match": sized.headers["ETag"]})
    assert hidden.code == 200
    off = json.loads(hidden.body)["environments"][0]
    assert off["kernel"]["active"] is False and off["actions"]["activate"]["allowed"] is True
    envmgr("activate", "k")
    shown = await get_list(jp_fetch, **{"If-None-Match": hidden.headers["ETag"]})
    assert shown.code == 200 and shown.headers["ETag"] == sized.headers["ETag"]  # as before
    assert json.loads(shown.body) == json.loads(sized.body)


def test_the_lists_are_made_while_the_server_loads_its_other_extensions(
    jp_configurable_serverapp, jp_server_config, jp_argv
):
    """The lists are begun in a thread as soon as the extension is loaded, not when the
    server's loop starts the extensions: there JupyterLab's language-server discovery (a thread
    pool) would share the interpreter with them, and a panel's first request would wait."""
    app = jp_configurable_serverapp(config=jp_server_config, argv=jp_argv)  # loaded, not started
    extension = next(iter(app.extension_manager.extension_apps["jupyter_env_manager"]))
    assert extension.startup is None  # no extension's start has run
    extension.primed.result(timeout=60)
    made = extension.service.listing._responses
    # The full list, and the panel's (compact, per store), with their gzip.
    for key in ((None, "full"), ("local", "compact"), ("shared", "compact")):
        assert made[key].compressed is not None, key


def test_lists_that_cannot_be_made_do_not_keep_the_server_from_starting(
    jp_configurable_serverapp, jp_server_config, jp_argv, jp_asyncio_loop, monkeypatch
):
    """A store that cannot be listed at the start is logged, and the rest of the start-up
    (the watcher, the recovery, the kernel sync) runs all the same."""
    from jupyter_env_manager.core.listing import Listing

    def unreadable(self):
        raise OSError("the store cannot be read")

    monkeypatch.setattr(Listing, "prime", unreadable)
    app = jp_configurable_serverapp(config=jp_server_config, argv=jp_argv)
    extension = next(iter(app.extension_manager.extension_apps["jupyter_env_manager"]))
    svc = extension.service
    logged: list[str] = []
    monkeypatch.setattr(svc.log, "exception", lambda message, *args: logged.append(message))
    synced: list[bool] = []
    real_sync = svc.kernels.sync
    svc.kernels.sync = lambda *a, **k: synced.append(True) or real_sync(*a, **k)
    jp_asyncio_loop.run_until_complete(app.extension_manager.start_all_extensions())
    jp_asyncio_loop.run_until_complete(asyncio.wait_for(extension.startup, 60))
    assert logged == ["jupyter_env_manager: making the list failed"]
    assert synced == [True]


async def test_the_rest_of_the_start_up_waits_for_the_lists(jp_serverapp):
    """The watcher's first snapshot, the recovery and the kernel sync begin once the lists are
    made, so that they do not share the interpreter with them."""
    extension = next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_env_manager"]))
    svc = extension.service
    await extension.watcher.stop()
    order: list[str] = []

    def spy(label, real):  # records the call, then does the real thing
        def call(*args, **kwargs):
            order.append(label)
            return real(*args, **kwargs)

        return call

    extension.watcher.start = spy("watcher", extension.watcher.start)
    svc.recover = spy("recovery", svc.recover)
    svc.kernels.sync = spy("kernel sync", svc.kernels.sync)
    extension.primed = concurrent.futures.Future()  # the lists still being made
    start_up = asyncio.ensure_future(extension._start_up())
    for _ in range(20):
        await asyncio.sleep(0)
    assert order == [] and not start_up.done()
    extension.primed.set_result(None)
    await asyncio.wait_for(start_up, 60)
    assert order == ["watcher", "recovery", "kernel sync"]


def test_an_adopted_prefix_is_listed_as_managed_at_once(service, envmgr_settings, config_file):
    """Adopting keeps the prefix and its conda-meta as they are: the listing must not take the
    view it holds of the prefix made by conda for the managed environment's."""
    service.local.ensure()
    (Path(envmgr_settings["local_root"]) / "by-conda" / "conda-meta").mkdir(parents=True)
    age(envmgr_settings["local_root"])
    assert [(e["name"], e["managed"]) for e in service.envs.list("local")] == [("by-conda", False)]
    service.envs.adopt("local", "by-conda")
    adopted = service.envs.list("local")
    assert [(e["name"], e["managed"], e["version"]) for e in adopted] == [("by-conda", True, 1)]


def test_a_building_environment_read_again_to_the_same_view_keeps_its_fragment(service):
    """A building environment's records are read at every listing (its status is live); read
    to the same view, its fragment stands and the response is not joined again."""
    service.envs.create({"scope": "local", "name": "busy"})
    service.envs.create({"scope": "local", "name": "idle"})
    queued = service.builds.prepare("local", "busy")  # building until a worker takes it
    listing = service.listing
    made = listing.response()
    entry = listing._entries[("local", "busy")]
    assert entry.base is not None and entry.base["status"] == "building"
    assert entry.stamps == ()  # never trusted: read again next time
    again = listing.response()
    assert listing._entries[("local", "busy")] is not entry  # it was read again
    assert listing._entries[("local", "busy")].fragment is entry.fragment
    assert again is made and again.parts[0] is entry.fragment  # no new join
    service.builds.finish_cancelled("local", "busy", queued.version)
    after = listing.response()
    assert after is not made
    assert json.loads(after.data)["environments"][0]["status"] != "building"


# -- the compact list (the panel's) ---------------------------------------------------------


def expanded(body: bytes) -> list[dict]:
    """A compact list's environments with their actions as the full list has them (as the
    panel's expandActions makes them)."""
    data = json.loads(body)
    reasons = data["reasons"]
    for env in data["environments"]:
        for action, state in env["actions"].items():
            if state is None:
                env["actions"][action] = {"allowed": True, "reason": None}
            elif isinstance(state, int):
                env["actions"][action] = {"allowed": False, "reason": reasons[state]}
    return data["environments"]


async def test_the_compact_list_is_the_full_list_with_each_reason_sent_once(
    jp_fetch, jp_serverapp, envmgr_settings
):
    svc = server_service(jp_serverapp)
    for name in ("one", "two", "three"):
        await post(jp_fetch, "environments", body={"name": name})
    await post(jp_fetch, "environments", body={"scope": "shared", "name": "team"})
    age(envmgr_settings["local_root"], envmgr_settings["shared_root"], svc.kernels.dir.parent)
    for scope in ("local", "shared", None):
        params = {"scope": scope} if scope else {}
        full = await jp_fetch(NS, "environments", params=params)
        compact = await jp_fetch(NS, "environments", params={**params, "view": "compact"})
        assert expanded(compact.body) == json.loads(full.body)["environments"], scope
        assert compact.headers["ETag"] != full.headers["ETag"]
        if scope == "local":
            assert len(compact.body) < 0.6 * len(full.body)
            # Each sentence once, however many environments say it.
            reason = json.dumps("No build is running")
            assert full.body.decode().count(reason) == 3
            assert compact.body.decode().count(reason) == 1
    # Made once per change like the full one: the same response, and 304 for its ETag.
    made = svc.listing._responses[("local", "compact")]
    again = await get_list_of(jp_fetch, {"scope": "local", "view": "compact"})
    assert svc.listing._responses[("local", "compact")] is made
    cached = await get_list_of(
        jp_fetch, {"scope": "local", "view": "compact"}, **{"If-None-Match": again.headers["ETag"]}
    )
    assert cached.code == 304

    # A change: a new reason is added to the list's reasons; the others keep their number.
    before = json.loads(again.body)
    queued = svc.builds.prepare("local", "two")  # building (no worker takes it here)
    try:
        changed = await jp_fetch(NS, "environments", params={"view": "compact"})
        full = await jp_fetch(NS, "environments")
    finally:
        svc.builds.finish_cancelled("local", "two", queued.version)
    after = json.loads(changed.body)
    assert after["reasons"][: len(before["reasons"])] == before["reasons"]
    assert len(after["reasons"]) > len(before["reasons"])
    assert expanded(changed.body) == json.loads(full.body)["environments"]


async def get_list_of(jp_fetch, params: dict, **headers: str):
    return await jp_fetch(NS, "environments", params=params, headers=headers, raise_error=False)


@pytest.mark.parametrize("view", ["", "FULL", "summary", "compact,full", "x" * 600])
async def test_an_unknown_view_is_a_400_naming_it(jp_fetch, view):
    response = await get_list_of(jp_fetch, {"view": view})
    assert response.code == 400
    error = json.loads(response.body)
    assert error["field"] == "view" and error["item"] == view[:500]
    assert "use 'full' or 'compact'" in error["message"]


def test_a_compact_fragment_keeps_any_reason_and_any_other_shape():
    from jupyter_env_manager.core.listbody import Reasons, compact_fragment

    tricky = ['say "no", then }', "back\\slash\n", "é ü – 漢字", "", "a,b:{c}"]
    view = {
        "name": "n",
        "description": '"actions":{"build":{"allowed":false,"reason":"not this one"}}',
        "actions": {f"a{i}": {"allowed": False, "reason": r} for i, r in enumerate(tricky)}
        | {
            "ok": {"allowed": True, "reason": None},
            "odd": {"allowed": True, "reason": "allowed, with a note"},
            "more": {"allowed": False, "reason": None, "extra": 1},
        },
        "lifecycle": {"status": "draft"},
    }
    reasons = Reasons()
    fragment = json.dumps(view, separators=(",", ":"))
    compact = json.loads(compact_fragment(fragment, reasons))
    table = json.loads(reasons.json())
    assert table == tricky
    assert compact["actions"] == {f"a{i}": i for i in range(len(tricky))} | {
        "ok": None,
        "odd": view["actions"]["odd"],  # not of the two shapes: as it was
        "more": view["actions"]["more"],
    }
    assert {k: v for k, v in compact.items() if k != "actions"} == {
        k: v for k, v in view.items() if k != "actions"
    }
    # Numbers stay: a second fragment reuses them and adds its own after.
    other = {"actions": {"x": {"allowed": False, "reason": "new"}, "y": view["actions"]["a1"]}}
    again = json.loads(compact_fragment(json.dumps(other, separators=(",", ":")), reasons))
    assert again["actions"] == {"x": len(tricky), "y": 1}
    assert compact_fragment('{"name":"no actions"}', reasons) == '{"name":"no actions"}'
