"""Hostile input (issue 10) over real HTTP and through the CLI: each answer is a 400 (or 413)
naming the field, with the same message at every door, and nothing is created.

Every test here failed before its fix (see the issue-10 commit): a 500, a 200, or an
environment left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from jupyter_core.paths import jupyter_data_dir
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.core.errors import EnvManagerError

NS = "env-manager"


def store_snapshot(settings: dict) -> dict[str, object]:
    """Every path under both stores and the kernels dir, and ~/.conda/environments.txt."""
    out: dict[str, object] = {}
    for root in (
        settings["local_root"],
        settings["shared_root"],
        Path(jupyter_data_dir(), "kernels"),
    ):
        for dirpath, dirs, files in os.walk(root):
            for entry in dirs + files:
                out[os.path.join(dirpath, entry)] = None
    registry = Path.home() / ".conda" / "environments.txt"
    out[str(registry)] = registry.read_text() if registry.exists() else None
    return out


async def fetch(jp_fetch, method: str, path: str, body=None, raw: str | bytes | None = None, **q):
    kwargs: dict = {"method": method}
    if raw is not None:
        kwargs["body"] = raw
    elif body is not None:
        kwargs["body"] = json.dumps(body)
    elif method in ("POST", "PATCH", "PUT"):
        kwargs["body"] = "{}"
    if q:
        kwargs["params"] = q
    return await jp_fetch(NS, *path.split("/"), **kwargs)


async def refused(jp_fetch, status: int, method: str, path: str, body=None, raw=None, **q):
    """The error payload of a request that must fail with ``status``."""
    with pytest.raises(HTTPClientError) as info:
        await fetch(jp_fetch, method, path, body, raw, **q)
    assert info.value.code == status, info.value.response.body[:500]
    payload = json.loads(info.value.response.body)
    assert set(payload) <= {"message", "field", "item", "reason"}, payload
    return payload


def core_error(call, *args) -> dict:
    with pytest.raises(EnvManagerError) as info:
        call(*args)
    return info.value.to_dict()


# (body of POST environments, field, message): each refused by every door with this message.
BAD_CREATE = [
    ({"name": "abc\n"}, "name", "Invalid environment name 'abc\\n'"),
    ({"name": "abc\r"}, "name", "Invalid environment name"),
    ({"name": 123}, "name", "'name' must be a string"),
    ({"name": ["abc"]}, "name", "'name' must be a string"),
    ({}, "name", "'name' is required"),
    ({"name": "ok", "build": "no"}, "build", "'build' must be true or false"),
    ({"name": "ok", "build": 1}, "build", "'build' must be true or false"),
    ({"name": "ok", "scope": 5}, "scope", "Invalid scope 5"),
    ({"name": "ok", "scope": ""}, "scope", "Invalid scope ''"),
    ({"name": "ok", "display_name": "A\nchannels: [evil]"}, "display_name", "line breaks"),
    ({"name": "ok", "display_name": "A\u2028B"}, "display_name", "line breaks"),
    ({"name": "ok", "description": 5}, "description", "'description' must be a string"),
    ({"name": "ok", "python": "3.١١"}, "python", "Invalid python version '3.١١'"),
    ({"name": "ok", "channels": 5}, "channels", "'channels' must be a list of strings"),
    ({"name": "ok", "channels": ["ch\nan"]}, "channels", "printable ASCII"),
    ({"name": "ok", "conda": ["alpha\n--x"]}, "conda", "printable ASCII"),
    ({"name": "ok", "conda": ["a" * 600]}, "conda", "longer than 500 characters"),
    ({"name": "ok", "pip": [5]}, "pip", "'pip' must be a list of strings"),
    (
        {"name": "ok", "pip": ["hello @ https://example.org/hello-1.0-py3-none-any.whl"]},
        "pip",
        "direct URL references are not allowed",
    ),
    (
        {"name": "ok", "pip": ["hello @ git+https://example.org/hello.git"]},
        "pip",
        "direct URL references are not allowed",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_CREATE)
async def test_bad_create_bodies_are_400_everywhere_and_create_nothing(
    jp_fetch, service, envmgr_settings, body, field, message
):
    before = store_snapshot(envmgr_settings)
    rest = await refused(jp_fetch, 400, "POST", "environments", body)
    assert message in rest["message"], rest
    assert rest["field"] == field
    # the CLI and the magics call the core with the same body: the same answer
    assert core_error(service.envs.create, body) == {k: v for k, v in rest.items() if k != "reason"}
    assert store_snapshot(envmgr_settings) == before


async def test_a_trailing_newline_in_a_name_creates_nothing_and_breaks_no_registry(
    jp_fetch, envmgr_settings
):
    registry = Path.home() / ".conda" / "environments.txt"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text("/opt/conda/envs/other\n")
    before = store_snapshot(envmgr_settings)
    err = await refused(jp_fetch, 400, "POST", "environments", {"name": "abc\n", "build": True})
    assert err["message"].startswith("Invalid environment name 'abc\\n': use 1-32 lowercase")
    err = await refused(jp_fetch, 400, "GET", "environments/local/abc%0A")
    assert err["field"] == "name"
    assert store_snapshot(envmgr_settings) == before
    assert registry.read_text() == "/opt/conda/envs/other\n"


def test_the_cli_refuses_the_same_name_with_the_same_message(config_file, capsys):
    from jupyter_env_manager.cli.commands import main

    assert main(["create", "abc\n", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["field"] == "name"
    assert out["message"].startswith("Invalid environment name 'abc\\n'")


ALIAS_BOMB = """name: bomb
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
dependencies: [{pip: [*f]}]
"""


async def test_a_yaml_alias_bomb_is_refused_small_and_fast(jp_fetch, envmgr_settings):
    before = store_snapshot(envmgr_settings)
    with pytest.raises(HTTPClientError) as info:
        await fetch(jp_fetch, "POST", "environments/import", {"environment_yml": ALIAS_BOMB})
    assert info.value.code == 400
    assert len(info.value.response.body) < 1000
    err = json.loads(info.value.response.body)
    assert err == {
        "message": "'environment_yml' uses YAML anchors or aliases (& or *), which are not "
        "supported",
        "field": "environment_yml",
    }
    assert store_snapshot(envmgr_settings) == before


@pytest.mark.parametrize(
    ("yml", "field", "message"),
    [
        ("name: x\nchannels: 5\n", "channels", "'channels' must be a list of strings"),
        ("name: x\ndependencies: 5\n", "conda", "'dependencies' must be a list"),
        ("name: x\ndependencies: [{pip: [5]}]\n", "pip", "'pip' must be a list of strings"),
        ("name: x\ndependencies: [[alpha]]\n", "conda", "Unsupported dependency entry"),
        ("name: 5\n", "name", "'name' in the environment.yml must be a string"),
        ('name: "x\\n"\n', "name", "Invalid environment name 'x\\n'"),
        ("dependencies: []\n", "name", "'name' is required"),
        ("name: x\n" + "a: " + "[" * 50 + "]" * 50 + "\n", "environment_yml", "nested more than"),
        ("name: x\n#" + "y" * 300_000 + "\n", "environment_yml", "larger than 256 KiB"),
        ("name: x\n---\nname: y\n", "environment_yml", "one YAML document"),
        ("!!python/object:os.system x\n", "environment_yml", "not valid YAML"),
        (
            "name: x\ndependencies: [{pip: ['h @ https://example.org/h.whl']}]\n",
            "pip",
            "direct URL references are not allowed",
        ),
    ],
)
async def test_bad_environment_yml_is_a_400_naming_the_field(
    jp_fetch, service, envmgr_settings, yml, field, message
):
    before = store_snapshot(envmgr_settings)
    err = await refused(jp_fetch, 400, "POST", "environments/import", {"environment_yml": yml})
    assert message in err["message"] and err["field"] == field, err
    assert core_error(service.envs.import_, {"environment_yml": yml})["message"] == err["message"]
    assert store_snapshot(envmgr_settings) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"environment_yml": "name: x\n", "build": "no"}, "build", "'build' must be true or"),
        ({"environment_yml": 5}, "environment_yml", "must be a non-empty string"),
        ({"environment_yml": "name: x\n", "name": 7}, "name", "'name' must be a string"),
        ({"environment_yml": "name: x\n", "display_name": "a\nb"}, "display_name", "line"),
        ({"environment_yml": "name: x\n", "colour": 1}, "colour", "Unknown field 'colour'"),
    ],
)
async def test_bad_import_bodies(jp_fetch, envmgr_settings, body, field, message):
    before = store_snapshot(envmgr_settings)
    err = await refused(jp_fetch, 400, "POST", "environments/import", body)
    assert message in err["message"] and err["field"] == field, err
    assert store_snapshot(envmgr_settings) == before


async def test_bodies_bounded_in_size_and_depth(jp_fetch, envmgr_settings):
    before = store_snapshot(envmgr_settings)
    deep = "[" * 100_000 + "]" * 100_000
    err = await refused(jp_fetch, 400, "POST", "environments", raw=deep)
    assert err["message"] == "The request body is nested too deeply"
    deep_obj = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    err = await refused(jp_fetch, 400, "PATCH", "environments/local/x", raw=deep_obj)
    assert err["message"] == "The request body is nested too deeply"
    big = json.dumps({"name": "big", "description": "x" * (1024 * 1024)})
    err = await refused(jp_fetch, 413, "POST", "environments", raw=big)
    assert err["message"] == "The request body is larger than 1024 KiB"
    err = await refused(jp_fetch, 400, "POST", "environments", raw="[1]")
    assert err["message"] == "The request body must be a JSON object"
    assert store_snapshot(envmgr_settings) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "environments"),
        ("POST", "environments/import"),
        ("PATCH", "environments/local/there"),
        ("POST", "environments/local/there/install"),
        ("POST", "environments/local/there/uninstall"),
        ("POST", "environments/local/there/copy"),
        ("POST", "environments/local/there/revert"),
        ("POST", "pins"),
        ("POST", "pins/check"),
        ("POST", "install-all"),
        ("POST", "requests"),
        ("POST", "requests/0123456789abcdef/reject"),
    ],
)
async def test_a_required_body_that_is_missing_is_a_400(
    jp_fetch, service, envmgr_settings, method, path
):
    """What the OpenAPI document says is required: no body is not ``{}`` (which a PATCH of
    nothing may send)."""
    service.envs.create({"name": "there"})
    before = store_snapshot(envmgr_settings)
    err = await refused(jp_fetch, 400, method, path, raw="")
    assert err == {"message": "A JSON body is required", "field": "body"}, err
    assert store_snapshot(envmgr_settings) == before


async def test_an_optional_body_may_be_missing(jp_fetch, service):
    service.envs.create({"name": "there"})
    patched = await fetch(jp_fetch, "PATCH", "environments/local/there", raw="{}")
    assert patched.code == 200  # {} is a body: nothing to change
    built = await fetch(jp_fetch, "POST", "environments/local/there/builds", raw="")
    assert built.code == 202
    swept = await fetch(jp_fetch, "POST", "gc", raw="")
    assert swept.code == 200


@pytest.fixture
def unbuilt(service):
    """Environment ``u`` with version 1 queued (no worker runs it) and a log of 6 bytes."""
    service.envs.create({"name": "u"})
    build = service.builds.prepare("local", "u")
    service.store("local").log_path("u", build.version).write_bytes(b"hello\n")
    return build


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("²", "Invalid version '²'"),
        ("١", "Invalid version '١'"),
        ("１", "Invalid version '１'"),
        ("9" * 300, "Invalid version '999"),
        ("0", "Invalid version '0'"),
        ("1 ", "Invalid version '1 '"),
    ],
)
async def test_versions_are_ascii_digits_of_bounded_length(jp_fetch, unbuilt, version, message):
    for path in ("builds/{}", "builds/{}/log"):
        err = await refused(jp_fetch, 400, "GET", "environments/local/u/" + path.format(version))
        assert err["message"].startswith(message) and err["field"] == "version", err


async def test_log_offsets_past_the_end_or_huge_are_400(jp_fetch, unbuilt):
    r = await fetch(jp_fetch, "GET", "environments/local/u/builds/1/log", offset="6")
    assert r.body == b"" and r.headers["X-Log-Offset"] == "6"
    err = await refused(jp_fetch, 400, "GET", "environments/local/u/builds/1/log", offset="7")
    assert err == {
        "message": "Invalid offset 7: the log has 6 bytes so far",
        "field": "offset",
        "item": "7",
    }
    for offset in ("9" * 30, "١", "-1", "1e3"):
        err = await refused(
            jp_fetch, 400, "GET", "environments/local/u/builds/1/log", offset=offset
        )
        assert err["message"].startswith(f"Invalid offset {offset!r}") and err["field"] == "offset"


async def test_revert_and_copy_bodies_are_type_checked(jp_fetch, service, unbuilt):
    base = "environments/local/u/"
    cases = [
        ("revert", {"version": "1"}, "version", "'version' must be an integer"),
        ("revert", {"version": True}, "version", "'version' must be an integer"),
        ("revert", {"version": 10**30}, "version", "Invalid version '1000"),
        ("revert", {"version": 1, "x": 1}, "x", "Unknown field 'x'"),
        ("copy", {"to": 5}, "to", "Invalid scope 5 in 'to'"),
        ("copy", {"to": None}, "to", "'to' is required"),
        ("copy", {"to": "shared", "name": 5}, "name", "'name' must be a string"),
        ("copy", {"to": "shared", "name": "n\n"}, "name", "Invalid environment name 'n\\n'"),
    ]
    for verb, body, field, message in cases:
        err = await refused(jp_fetch, 400, "POST", base + verb, body)
        assert err["message"].startswith(message) and err["field"] == field, (body, err)
    # the CLI's revert passes its argument as text: the same rule
    assert core_error(service.builds.revert, "local", "u", "١")["message"].startswith(
        "Invalid version '١'"
    )


async def test_patch_is_type_checked_and_changes_nothing(jp_fetch, service, unbuilt):
    before = service.envs.get("local", "u", versions=False)["spec"]
    for body, field in [
        ({"display_name": "x\nchannels: [evil]"}, "display_name"),
        ({"pip": ["h @ https://example.org/h.whl"]}, "pip"),
        ({"conda": "alpha", "channels": {"a": 1}}, "channels"),
        ({"colour": "red"}, "colour"),
    ]:
        err = await refused(jp_fetch, 400, "PATCH", "environments/local/u", body)
        assert err["field"] == field, err
    assert service.envs.get("local", "u", versions=False)["spec"] == before


def test_direct_urls_are_accepted_when_the_server_allows_them(service):
    req = "hello @ https://example.org/hello-1.0-py3-none-any.whl"
    service.settings.pip_allow_direct_urls = True
    env, _ = service.envs.create({"name": "direct", "pip": [req]})
    assert env["spec"]["pip"] == [req]
    # still https:// and git+https:// only
    err = core_error(service.envs.create, {"name": "d2", "pip": ["h @ http://example.org/h.whl"]})
    assert "only https:// and git+https:// URLs are allowed" in err["message"]


async def test_export_quotes_every_value(jp_fetch, service):
    """An old record (written before display names were checked) cannot inject keys."""
    await fetch(jp_fetch, "POST", "environments", {"name": "q", "conda": ["alpha"]})
    store = service.store("local")
    record = store.read_env("q")
    record.spec.display_name = "Q\nchannels: [evil]\r\x85dependencies: [evil]\u2028x: 1"
    record.spec.description = "line\nprefix: /etc"
    store.write_env("q", record)
    r = await fetch(jp_fetch, "GET", "environments/local/q/export")
    doc = yaml.safe_load(r.body.decode())
    assert set(doc) == {"name", "channels", "dependencies"}
    assert doc["channels"] != ["evil"] and "evil" not in doc["dependencies"]
    # and it imports back to the same packages
    spec = service.envs.import_({"environment_yml": r.body.decode(), "name": "q2"})[0]["spec"]
    assert spec["conda"] == ["alpha"]


async def test_internal_errors_carry_a_reference_not_the_exception(jp_fetch, jp_serverapp, caplog):
    """A bug (simulated: the listing raises) answers a generic 500; the log has the details."""
    service = jp_serverapp.web_app.settings["env_manager"]

    def crash(*args, **kwargs):  # stands in for a bug: nothing here can make one on demand
        raise RuntimeError("secret detail /home/alice/.token")

    service.listing.response = crash  # what GET environments calls
    with pytest.raises(HTTPClientError) as info:
        await fetch(jp_fetch, "GET", "environments")
    assert info.value.code == 500
    body = info.value.response.body.decode()
    assert "secret" not in body and "alice" not in body
    message = json.loads(body)["message"]
    assert message.startswith("Internal server error (reference ")
    ref = message.split("reference ")[1].split(":")[0]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "environments", "GET, POST"),
        ("GET", "environments/import", "POST"),
        ("DELETE", "info", "GET"),
        ("GET", "environments/local/u/activate", "POST"),
        ("PUT", "environments/local/u", "GET, DELETE, PATCH"),
        ("POST", "environments/local/u/export", "GET"),
    ],
)
async def test_405_says_which_methods_are_allowed(jp_fetch, method, path, allow):
    with pytest.raises(HTTPClientError) as info:
        await fetch(jp_fetch, method, path)
    assert info.value.code == 405
    assert info.value.response.headers["Allow"] == allow
    assert json.loads(info.value.response.body)["message"]


def test_every_pattern_is_matched_whole():
    """No ``$`` anchors and no ``.match`` with a pattern: a trailing newline would pass."""
    import re

    package = Path(__file__).parents[1] / "jupyter_env_manager"
    for path in sorted(package.glob("*/*.py")) + sorted(package.glob("*.py")):
        text = path.read_text()
        assert not re.search(r"""re\.compile\(\s*r?["'][^"']*\$["']""", text), path
        assert ".match(" not in text, path
        assert ".isdigit(" not in text, path
