"""A local wheelhouse of real pure-python wheels, written offline, for the pip-layer tests.

Wheels: ``envmgr-hello`` 1.0 and 2.0 (module ``envmgr_hello`` with ``__version__`` and a console
script ``envmgr-hello``), ``envmgr-dep`` 1.0, ``envmgr-uses-dep`` 1.0 (requires ``envmgr-dep``),
and optionally ``synthetic-pkg-<i>`` (a few modules each) for benchmarks. Install them with
``uv pip install --python <prefix>/bin/python --no-index --find-links <wheelhouse> ...``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed: the same inputs give byte-identical wheels


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def write_wheel(
    directory: str | os.PathLike[str],
    name: str,
    version: str,
    modules: Mapping[str, str],
    *,
    requires: Sequence[str] = (),
    console_scripts: Mapping[str, str] | None = None,
    summary: str = "",
) -> Path:
    """Write a pure-python ``py3-none-any`` wheel; ``modules`` maps archive paths to source."""
    distribution = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = f"{distribution}-{version}.dist-info"
    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary or name + ' (a jupyter_env_manager test wheel)'}",
        "License: BSD-3-Clause",
        "Requires-Python: >=3.8",
        *(f"Requires-Dist: {requirement}" for requirement in requires),
    ]
    files: dict[str, bytes] = {path: source.encode() for path, source in modules.items()}
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata_lines) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\n"
        b"Generator: jupyter_env_manager.testing\n"
        b"Root-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    if console_scripts:
        lines = ["[console_scripts]", *(f"{k} = {v}" for k, v in console_scripts.items())]
        files[f"{dist_info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()
    record_path = f"{dist_info}/RECORD"
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()]
    files[record_path] = ("\n".join([*record, f"{record_path},,"]) + "\n").encode()

    target = Path(directory) / f"{distribution}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data)
    return target


def _hello(version: str) -> dict[str, str]:
    return {
        "envmgr_hello/__init__.py": (
            f'__version__ = "{version}"\n\n\n'
            "def main():\n"
            "    import sys\n\n"
            '    print(f"envmgr-hello {__version__} from {sys.prefix}")\n'
        ),
    }


def build_wheelhouse(path: str | os.PathLike[str], n_synthetic: int = 0) -> Path:
    """Write the test wheels into ``path`` (created if needed) and return it."""
    house = Path(path)
    house.mkdir(parents=True, exist_ok=True)
    for version in ("1.0", "2.0"):
        write_wheel(
            house,
            "envmgr-hello",
            version,
            _hello(version),
            console_scripts={"envmgr-hello": "envmgr_hello:main"},
        )
    write_wheel(house, "envmgr-dep", "1.0", {"envmgr_dep/__init__.py": '__version__ = "1.0"\n'})
    write_wheel(
        house,
        "envmgr-uses-dep",
        "1.0",
        {"envmgr_uses_dep/__init__.py": "from envmgr_dep import __version__ as dep_version\n"},
        requires=["envmgr-dep>=1.0"],
    )
    for i in range(n_synthetic):
        module = f"synthetic_pkg_{i}"
        sources = {f"{module}/__init__.py": f'__version__ = "1.0"\nINDEX = {i}\n'}
        for k in range(4):
            sources[f"{module}/part_{k}.py"] = (
                f"def value():\n    return {i * 10 + k}\n\n\n" + "# padding\n" * 20
            )
        write_wheel(house, f"synthetic-pkg-{i}", "1.0", sources)
    return house
