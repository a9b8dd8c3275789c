"""Specs from the files people have: requirements.txt, environment.yml ``variables:``, conda's
full match-spec forms; adopting an environment keeps its pip layer. Real builds, real kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import build, run_in_kernel
from tornado.httpclient import HTTPClientError

from jupyter_env_manager.core import kernels
from jupyter_env_manager.core.errors import ValidationError
from jupyter_env_manager.core.requirements import looks_like_requirements, parse_requirements

REQUIREMENTS = """\
# the project's requirements
envmgr-hello==1.0   # pinned
envmgr-uses-dep ; python_version >= "3.8"
envmgr-dep \\
    >=1.0
envmgr-never ; python_version < "3.0"

"""


def installed_of(service, name: str, kind: str) -> dict[str, str]:
    packages = service.packages.installed("local", name)["packages"]
    return {p["name"]: p["version"] for p in packages if p["kind"] == kind}


def test_requirements_keep_markers_and_continuations_and_drop_comments():
    assert parse_requirements(REQUIREMENTS) == [
        "envmgr-hello==1.0",
        'envmgr-uses-dep ; python_version >= "3.8"',
        "envmgr-dep >=1.0",
        'envmgr-never ; python_version < "3.0"',
    ]


@pytest.mark.parametrize(
    "text, line, expected",
    [
        ("alpha\n-r other.txt\n", 2, "includes (-r) are not supported"),
        ("--requirement=base.txt\n", 1, "includes (--requirement) are not supported"),
        ("a\nb\n-c constraints.txt\n", 3, "includes (-c) are not supported"),
        ("--index-url https://evil.example/simple\nalpha\n", 1, "the option --index-url"),
        ("alpha\n\n# x\n-e git+https://x.example/r.git#egg=r\n", 4, "the option -e"),
        ("--find-links=/tmp/wheels\n", 1, "the option --find-links"),
        ("-i https://evil.example\n", 1, "the option -i"),
        ("alpha==1 --hash=sha256:00\n", 1, "options after a requirement"),
        ("ok\nnot a requirement!\n", 2, "Invalid pip requirement 'not a requirement!'"),
        ("x @ https://example.com/x.whl\n", 1, "direct URL references are not allowed"),
    ],
)
def test_requirements_refuse_includes_and_options_naming_the_line(text, line, expected):
    with pytest.raises(ValidationError) as info:
        parse_requirements(text)
    err = info.value
    assert err.field == "requirements_txt" and err.item == f"line {line}"
    assert err.message.startswith(f"Line {line} of the requirements file")
    assert expected in err.message


def test_requirements_must_list_something():
    with pytest.raises(ValidationError, match="lists no requirements"):
        parse_requirements("# nothing\n\n")


def test_a_requirements_file_is_told_from_an_environment_yml():
    assert looks_like_requirements("requirements.txt", "alpha\n")
    assert looks_like_requirements("reqs", "alpha==1\nbeta\n")
    assert not looks_like_requirements("environment.yml", "alpha\n")
    assert not looks_like_requirements("env", "name: x\ndependencies: [alpha]\n")


def test_import_requirements_then_build_installs_them(service):
    env, _ = service.envs.import_({"name": "fromreq", "requirements_txt": REQUIREMENTS})
    assert env["spec"]["pip"][0] == "envmgr-hello==1.0" and env["spec"]["conda"] == []
    assert build(service, "local", "fromreq").status == "succeeded"
    pip = installed_of(service, "fromreq", "pip")
    # the marker that is false for this python kept envmgr-never out (it exists nowhere)
    assert pip == {"envmgr-hello": "1.0", "envmgr-uses-dep": "1.0", "envmgr-dep": "1.0"}


def test_cli_import_detects_a_requirements_file(service, tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("envmgr-dep>=1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", "import", str(path), "--name", "rq"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert service.envs.get("local", "rq")["spec"]["pip"] == ["envmgr-dep>=1"]
    path.write_text("envmgr-dep\n--extra-index-url https://x.example\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_env_manager.cli", "import", str(path), "--name", "rq2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Line 2 of the requirements file" in proc.stderr and "--extra-index-url" in proc.stderr
    assert "rq2" not in service.local.managed_names()


async def test_rest_import_of_a_requirements_file(jp_fetch, jp_serverapp):
    body = {"name": "viarest", "requirements_txt": "envmgr-hello>=1 # newest\n"}
    r = await jp_fetch(
        "env-manager", "environments", "import", method="POST", body=json.dumps(body)
    )
    assert r.code == 201 and json.loads(r.body)["spec"]["pip"] == ["envmgr-hello>=1"]
    for bad, field, message in [
        (
            {"name": "bad", "requirements_txt": "alpha\n-r base.txt\n"},
            "requirements_txt",
            "Line 2 of the requirements file ('-r base.txt'): includes (-r) are not supported",
        ),
        (
            {"requirements_txt": "alpha\n"},
            "name",
            "'name' is required: a requirements file has no environment name",
        ),
        (
            {"name": "bad", "requirements_txt": "a\n", "environment_yml": "name: x\n"},
            "requirements_txt",
            "Give either 'environment_yml' or 'requirements_txt', not both",
        ),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "env-manager", "environments", "import", method="POST", body=json.dumps(bad)
            )
        assert info.value.code == 400
        error = json.loads(info.value.response.body)
        assert error["field"] == field and error["message"].startswith(message), error
    r = await jp_fetch("env-manager", "environments")
    assert [e["name"] for e in json.loads(r.body)["environments"]] == ["viarest"]


VARIABLES_YML = """\
name: withvars
dependencies:
  - alpha=1.0
variables:
  MY_SETTING: "hello $HOME stays literal"
  RETRIES: 3
"""


def test_variables_reach_activation_kernels_and_export(service):
    env, _ = service.envs.import_({"environment_yml": VARIABLES_YML})
    expected = {"MY_SETTING": "hello $HOME stays literal", "RETRIES": "3"}
    assert env["spec"]["variables"] == expected
    assert build(service, "local", "withvars").status == "succeeded"
    prefix = Path(env["prefix"])
    written = prefix / "etc" / "conda" / "env_vars.d" / "zz-jupyter-env-manager.json"
    assert json.loads(written.read_text()) == expected
    assert kernels.activation(prefix).env["MY_SETTING"] == expected["MY_SETTING"]
    exported = service.envs.export("local", "withvars", "environment.yml")[0]
    assert "variables:\n  MY_SETTING: hello $HOME stays literal\n  RETRIES: '3'\n" in exported
    # a real kernel of the environment sees them, literally
    out, reply = run_in_kernel(
        "envmgr-withvars", "import os; print(os.environ['MY_SETTING'], os.environ['RETRIES'])"
    )
    assert reply["status"] == "ok" and out.strip() == "hello $HOME stays literal 3"
    # removed from the spec: the next build removes the file
    service.envs.update("local", "withvars", {"variables": {}})
    assert build(service, "local", "withvars").status == "succeeded"
    assert not written.exists()


@pytest.mark.parametrize(
    "variables, message",
    [
        ("X=1", "'variables' must be a mapping"),
        ({"1BAD": "x"}, "Invalid variable name '1BAD'"),
        ({"PATH": "/evil"}, "Variable 'PATH' in 'variables' is set by activation"),
        ({"CONDA_PREFIX": "/x"}, "Variable 'CONDA_PREFIX'"),
        ({"A": "two\nlines"}, "must be one line of printable text"),
        ({"A": True}, "must have a string or number value"),
        ({"A": ["x"]}, "must have a string or number value"),
    ],
)
def test_bad_variables_are_refused_and_nothing_is_created(service, variables, message):
    with pytest.raises(ValidationError) as info:
        service.envs.create({"name": "v", "variables": variables})
    assert info.value.field == "variables" and message in info.value.message
    assert service.local.managed_names() == []


@pytest.mark.parametrize(
    "spec",
    [
        "alpha=1.0=h*",  # conda's name=version=build (rattler's strict parser refuses it)
        "alpha[version='>=1,<2',build=*_0]",  # bracket form
        "alpha 1.0.* *_0",
    ],
)
def test_conda_full_match_spec_forms_build(service, spec):
    service.envs.create({"name": "forms", "conda": [spec]})
    result = build(service, "local", "forms")
    assert result.status == "succeeded", result.error
    conda = installed_of(service, "forms", "conda")
    assert conda["alpha"] == "1.0"
    assert service.envs.get("local", "forms")["spec"]["conda"] == [spec]  # kept as written


def test_channel_qualified_specs_are_accepted(service):
    env, _ = service.envs.create({"name": "chan", "conda": ["conda-forge::numpy>=1.26"]})
    assert env["spec"]["conda"] == ["conda-forge::numpy>=1.26"]
    with pytest.raises(ValidationError, match="Invalid conda package spec 'alpha=1.0=bad-b'"):
        service.envs.create({"name": "chan2", "conda": ["alpha=1.0=bad-b"]})


def test_adopt_keeps_the_pip_layer(service, wheelhouse):
    service.envs.create({"name": "demo", "conda": ["alpha=1.0"]})
    assert build(service, "local", "demo").status == "succeeded"
    store = service.local
    prefix = store.root / "byconda"
    os.rename(store.active_prefix("demo"), prefix)  # a plain prefix, as conda makes
    os.unlink(store.prefix("demo"))
    service.envs.delete("local", "demo")
    # pip-installed by hand, as `pip install` in a conda env does: INSTALLER says pip
    from uv import find_uv_bin

    subprocess.run(
        [find_uv_bin(), "pip", "install", "--no-config", "--python", str(prefix / "bin/python"),
         "--no-index", "--find-links", str(wheelhouse), "envmgr-uses-dep", "envmgr-hello==1.0"],
        check=True, capture_output=True,
    )  # fmt: skip
    site = next(prefix.glob("lib/python3*/site-packages"))
    (next(site.glob("envmgr_hello-*.dist-info")) / "INSTALLER").write_text("pip\n")
    adopted = service.envs.adopt("local", "byconda")
    assert adopted["spec"]["pip"] == [
        "envmgr-dep==1.0",
        "envmgr-hello==1.0",
        "envmgr-uses-dep==1.0",
    ]
    lock = json.loads(service.envs.export("local", "byconda", "lock")[0])
    assert {d["name"] for d in lock["pip"]} == {"envmgr-dep", "envmgr-hello", "envmgr-uses-dep"}
    assert build(service, "local", "byconda").status == "succeeded"
    pip = installed_of(service, "byconda", "pip")
    assert pip == {"envmgr-dep": "1.0", "envmgr-hello": "1.0", "envmgr-uses-dep": "1.0"}
    out = subprocess.run(
        [str(prefix / "bin/python"), "-I", "-c", "import envmgr_hello, envmgr_uses_dep"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
