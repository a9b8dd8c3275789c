"""Private channels: credentials come from outside the spec and never land in a file we write.

A tiny HTTP server on 127.0.0.1 serves a copy of the test channel only to requests carrying the
token (an ``Authorization: Bearer`` header, or an anaconda.org-style ``/t/<token>/`` path
prefix); everything else gets 401. Builds go through it, then every file the extension wrote
(the store: specs, locks, logs, job records; the exports; the bundle) is searched for the token.
"""

from __future__ import annotations

import http.server
import json
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
from helpers import build, files_containing

from jupyter_env_manager.core.bundle import export_bundle
from jupyter_env_manager.core.diagnose import redact
from jupyter_env_manager.core.errors import ValidationError
from jupyter_env_manager.core.runner import run_foreground

TOKEN = "tok-3f9a1c77e2b54d0c"


@pytest.fixture
def private_channel(test_channel, tmp_path):
    """(base URL, requests served): the test channel behind a token check."""
    directory = tmp_path / "private-channel"
    shutil.copytree(Path(test_channel.removeprefix("file://")), directory)
    served: list[str] = []

    class TokenHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith(f"/t/{TOKEN}/"):
                self.path = self.path[len(f"/t/{TOKEN}") :]
            elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            served.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def written_files(service, tmp_path: Path, extra: list[Path]) -> list[Path]:
    roots = [Path(service.settings.local_root), *extra]
    files = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*"))]
    return [p for p in files if p.is_file() and not p.is_symlink()]


def token_free(service, tmp_path: Path, env: str, exports: Path) -> int:
    """Export every format, then search everything we wrote for the token; files checked."""
    exports.mkdir()
    for fmt in ("environment.yml", "lock", "explicit"):
        text, _type, filename = service.envs.export("local", env, fmt)
        (exports / filename).write_text(text)
    bundle = exports / f"{env}.tar"
    export_bundle(service, "local", env, bundle)
    with tarfile.open(bundle) as tar:
        tar.extractall(exports / "bundle-contents", filter="data")
    store_meta = Path(service.settings.local_root) / ".envmgr"
    checked = written_files(service, tmp_path, [exports])
    # the environment's prefix holds the packages' own files, not ours: only its conda-meta
    ours = [p for p in checked if store_meta in p.parents or exports in p.parents]
    ours += list((Path(service.settings.local_root) / env / "conda-meta").glob("*.json"))
    leaks = [str(p) for p in ours if TOKEN.encode() in p.read_bytes()]
    assert leaks == [], leaks
    assert files_containing(exports, TOKEN) == []
    # what is meant to be there is there, redacted
    assert any(p.name == "lock.json" for p in ours) and any(p.name == "log.txt" for p in ours)
    return len(ours)


def test_bearer_token_from_rattlers_auth_file(
    service, private_channel, tmp_path, monkeypatch, capsys
):
    url, served = private_channel
    auth = tmp_path / "rattler-auth.json"  # keyed by host name (rattler ignores the port)
    auth.write_text(json.dumps({"127.0.0.1": {"BearerToken": TOKEN}}))
    service.settings.channels = [url + "/"]
    service.settings.pkgs_dir = str(tmp_path / "own-pkgs")  # every archive through the server
    service.envs.create({"name": "priv", "conda": ["pytool"], "pip": ["envmgr-hello"]})

    failed = build(service, "local", "priv")  # no credentials configured: 401, said clearly
    assert failed.status == "failed" and "HTTP 401" in failed.error

    monkeypatch.setenv("RATTLER_AUTH_FILE", str(auth))  # the admin's setting, outside the spec
    assert build(service, "local", "priv").status == "succeeded"
    assert any(p.endswith(".tar.bz2") or p.endswith(".conda") for p in served)
    n = token_free(service, tmp_path, "priv", tmp_path / "exports")
    print(f"credentials (bearer): {n} files searched, 0 with the token")


def test_token_in_a_configured_channel_url_is_redacted_everywhere(
    service, private_channel, tmp_path
):
    url, served = private_channel
    service.settings.channels = [f"{url}/t/{TOKEN}/"]  # the admin's config, not the spec
    service.settings.pkgs_dir = str(tmp_path / "own-pkgs")
    service.envs.create({"name": "tok", "conda": ["pytool"]})
    assert build(service, "local", "tok").status == "succeeded"
    lock = service.envs.export("local", "tok", "lock")[0]
    assert "/t/***/" in lock and TOKEN not in lock
    # the bundle fetches the archives again (not in the package cache): with the secret put
    # back from the configuration, never from the redacted lock
    n = token_free(service, tmp_path, "tok", tmp_path / "exports")
    print(f"credentials (/t/ token): {n} files searched, 0 with the token")
    log = service.builds.read_log("local", "tok", 1, 0)[0].decode()
    assert "channels: " + url + "/t/***/" in log
    # A revert with an empty package cache downloads from the redacted lock's URLs: the secret
    # comes back from the configured channel.
    service.settings.pkgs_dir = str(tmp_path / "empty-pkgs")
    served.clear()
    queued = service.builds.revert("local", "tok", 1)
    done = run_foreground(service, "local", "tok", queued)
    assert done.status == "succeeded", done.error
    assert any(p.endswith((".tar.bz2", ".conda")) for p in served)


def test_a_spec_never_holds_credentials(service):
    for channel in (f"https://user:{TOKEN}@repo.example/ch", f"https://repo.example/t/{TOKEN}/ch"):
        with pytest.raises(ValidationError) as info:
            service.envs.create({"name": "leaky", "channels": [channel]})
        assert info.value.field == "channels"
        assert TOKEN not in info.value.message and "RATTLER_AUTH_FILE" in info.value.message
    assert service.envs.list("local") == []


def test_redact():
    assert redact(f"https://u:{TOKEN}@h/x") == "https://***@h/x"
    assert (
        redact(f"see http://h:1/t/{TOKEN}/noarch/a.conda") == "see http://h:1/t/***/noarch/a.conda"
    )
    assert redact(f"https://h/simple?token={TOKEN}&x=1") == "https://h/simple?token=***&x=1"
    assert redact("file:///home/u/channel") == "file:///home/u/channel"
