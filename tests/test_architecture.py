"""The layout's rules: the core imports no web framework or IPython; every route is guarded."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "jupyter_env_manager"
FORBIDDEN_IN_CORE = ("tornado", "jupyter_server", "IPython", "ipykernel", "ipywidgets")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level >= 2:
            # ``from ..server import x`` inside core/ reaches a door
            found.add("jupyter_env_manager." + (node.module or ""))
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_web_framework_ipython_or_door(path):
    for module in imported_modules(path):
        top = module.split(".")[0]
        assert top not in FORBIDDEN_IN_CORE, f"{path.name} imports {module}"
        assert not module.startswith(("jupyter_env_manager.server", "jupyter_env_manager.cli")), (
            f"{path.name} imports the door {module}"
        )


def test_the_rule_catches_a_web_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom tornado import web\nfrom ..server import app\n")
    assert {"tornado", "jupyter_env_manager.server"} <= imported_modules(bad)


# Imported by every build worker (one process per build) for what some builds only need.
NOT_IN_A_WORKERS_START = (
    "zipfile",
    "hashlib",
    "uuid",
    "rattler",
    "jupyter_env_manager.core.kernels",
)


def test_a_build_worker_starts_without_what_only_some_builds_need():
    code = (  # the worker's start, and what its kernel phase imports (the rest is lazy)
        "import sys, jupyter_env_manager.core.worker\n"
        f"print(' '.join(m for m in {NOT_IN_A_WORKERS_START!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
    after = "import sys, jupyter_env_manager.core.retention, jupyter_env_manager.core.kernels\n"
    after += "print(' '.join(m for m in ('zipfile', 'hashlib', 'uuid') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", after], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_every_route_is_authenticated_and_authorized():
    """As jupyterlab's extension template checks: each HTTP verb of each handler is wrapped by
    ``tornado.web.authenticated`` and ``jupyter_server.auth.authorized``."""
    from jupyter_env_manager.server.handlers import ROUTES, BaseHandler

    assert BaseHandler.auth_resource == "env_manager"
    checked = 0
    for _pattern, handler in ROUTES:
        for verb in ("get", "post", "put", "patch", "delete"):
            method = handler.__dict__.get(verb)
            if method is None:
                continue
            source = inspect.getsource(method)
            decorators = [line.strip() for line in source.splitlines() if line.strip()[:1] == "@"]
            assert "@tornado.web.authenticated" in decorators, f"{handler.__name__}.{verb}"
            assert "@authorized" in decorators, f"{handler.__name__}.{verb}"
            checked += 1
    assert checked >= len(ROUTES)
