"""Channels that cannot be reached, and builds with no network at all.

Errors: a closed port on 127.0.0.1, a host name that does not resolve and an HTTP 404 from a
tiny local server each fail the build at solve with the channel, the cause and the settings to
change, in the build's error (which the panel, the CLI and the magics show) and in its log.

Offline: the test channel is served over HTTP from 127.0.0.1, a first build fills the package
cache and the repodata cache, the server is stopped, and further builds run through the CLI in
a new network namespace (``unshare -n``: not even a loopback interface), so nothing can be read
from any network.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import build, run_in_kernel

from jupyter_env_manager.core.diagnose import classify


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    """serve(handler) -> (url, stop): an HTTP server on 127.0.0.1 for the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handler) -> tuple[str, callable]:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            servers.remove(server)

        return f"http://127.0.0.1:{server.server_address[1]}/", stop

    yield start
    for server in list(servers):
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: connections are refused


@pytest.mark.parametrize("case", ["refused", "dns", "http404"])
def test_an_unreachable_channel_names_channel_cause_and_setting(service, serve, case):
    if case == "refused":
        channel, cause = f"http://127.0.0.1:{closed_port()}/", "the connection was refused"
    elif case == "dns":
        channel, cause = "https://nonexistent.invalid/", "the host name does not resolve (DNS)"
    else:
        channel, cause = serve(NotFound)[0], "HTTP 404 Not Found"
    service.settings.channels = [channel]
    service.envs.create({"name": "net", "conda": ["alpha"]})
    b = build(service, "local", "net")
    assert b.status == "failed"
    # the channel and the cause first: a notification shows the first 140 characters
    assert b.error.startswith(f"Channel {channel} could not be reached: {cause}.")
    assert "c.EnvManager.channels" in b.error and "c.EnvManager.offline = True" in b.error
    log = service.builds.read_log("local", "net", b.version, 0)[0].decode()
    assert f"Channel {channel} could not be reached: {cause}." in log  # the log's banner line


def test_classify_keeps_other_errors_and_hides_credentials():
    assert classify("cannot solve: nothing provides foo", ["conda-forge"]) is None
    text = "error sending request for url (https://u:secret@h.example/t/tok123/ch/noarch/x)\n" \
        "Caused by: dns error"  # fmt: skip
    problem = classify(text, ["https://u:secret@h.example/t/tok123/ch"])
    assert problem is not None and "secret" not in problem.channel
    assert "tok123" not in problem.channel and problem.cause.endswith("(DNS)")


def test_cli_names_the_channel_too(config_file, envmgr_settings):
    channel = f"http://127.0.0.1:{closed_port()}/"
    config_file.write_text(json.dumps({"EnvManager": {**envmgr_settings, "channels": [channel]}}))
    cli = [sys.executable, "-m", "jupyter_env_manager.cli"]
    subprocess.run([*cli, "create", "net", "--conda", "alpha"], check=True, timeout=120)
    done = subprocess.run([*cli, "build", "net"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"Channel {channel} could not be reached: the connection was refused" in done.stderr


# -- offline ---------------------------------------------------------------------------------------


def can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


needs_netns = pytest.mark.skipif(
    not can_unshare(), reason="needs `unshare -n` (root or user namespaces) to cut the network"
)


def offline_cli(*args: str) -> subprocess.CompletedProcess:
    """``jupyter envmgr ARGS`` in a new network namespace: no interface is up, not even lo."""
    return subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "jupyter_env_manager.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def http_channel(serve, test_channel, tmp_path):
    """The test channel served over HTTP (a copy: the session's channel stays untouched)."""
    directory = tmp_path / "served-channel"
    shutil.copytree(Path(test_channel.removeprefix("file://")), directory)
    url, stop = serve(functools.partial(Quiet, directory=str(directory)))
    return url, stop


@needs_netns
def test_offline_build_from_caches_with_no_network(
    service, config_file, envmgr_settings, http_channel, tmp_path
):
    url, stop = http_channel
    settings = {**envmgr_settings, "channels": [url], "pkgs_dir": str(tmp_path / "own-pkgs")}
    config_file.write_text(json.dumps({"EnvManager": settings}))
    service.settings.channels = [url]
    service.settings.pkgs_dir = settings["pkgs_dir"]
    service.envs.create({"name": "off", "conda": ["pytool"], "pip": ["envmgr-hello==1.0"]})
    assert build(service, "local", "off").status == "succeeded"  # online: fills the caches
    stop()  # the channel is gone

    # Same spec, no network: cached repodata, the package cache, the wheelhouse.
    done = offline_cli("build", "off", "--offline")
    assert done.returncode == 0, done.stdout + done.stderr
    env = service.envs.get("local", "off")
    assert env["version"] == 2
    log = service.builds.read_log("local", "off", 2, 0)[0].decode()
    assert "offline: cached repodata and file:// channels" in log
    out, reply = run_in_kernel(env["kernel"]["name"], "import pytool, envmgr_hello; print('ok')")
    assert reply["status"] == "ok" and "ok" in out

    # A package that is in the (cached) repodata but was never downloaded: refused before
    # anything is linked, naming it; version 2 stays in use.
    service.envs.update("local", "off", {"conda": ["pytool", "gamma"]})
    done = offline_cli("build", "off", "--offline")
    assert done.returncode == 1
    assert "Offline, and 1 packages are neither in the package cache" in done.stderr
    assert "gamma=" in done.stderr
    env = service.envs.get("local", "off")
    assert env["version"] == 2 and env["versions"][-1]["status"] == "failed"
    log = service.builds.read_log("local", "off", 3, 0)[0].decode()
    assert "== link ==" not in log and "== download ==" not in log


@needs_netns
def test_offline_setting_and_a_channel_never_cached(config_file, envmgr_settings, tmp_path):
    """c.EnvManager.offline with a channel whose repodata was never read: the error says so."""
    settings = {**envmgr_settings, "channels": ["conda-forge"], "offline": True}
    config_file.write_text(json.dumps({"EnvManager": settings}))
    cli = [sys.executable, "-m", "jupyter_env_manager.cli"]
    subprocess.run([*cli, "create", "cf", "--conda", "alpha"], check=True, timeout=120)
    done = offline_cli("build", "cf")
    assert done.returncode == 1
    assert "Channel conda-forge could not be reached: offline, and no repodata" in done.stderr
    assert "build once with network, import a bundle" in done.stderr


def test_offline_rest_body_field(service):
    """The REST body of a build: ``offline`` must be a boolean (400 naming it otherwise)."""
    from jupyter_env_manager.core.bodies import build_request
    from jupyter_env_manager.core.errors import ValidationError

    assert build_request({}) is False and build_request({"offline": True}) is True
    with pytest.raises(ValidationError) as info:
        build_request({"offline": "yes"})
    assert info.value.field == "offline"
    with pytest.raises(ValidationError) as info:
        build_request({"offlne": True})
    assert "offlne" in info.value.message
