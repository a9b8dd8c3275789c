"""A local conda channel of real packages, written offline, for tests and benchmarks.

No conda channel is reachable from the machines this project is tested on, so the tests make
their own: real ``.tar.bz2`` and ``.conda`` archives (``info/index.json``, ``info/paths.json``,
``info/files``, payload), indexed with ``rattler.index.index_fs``. The default channel holds:

``python``
    The host interpreter in a venv-like layout: ``bin/python3.11`` is a symlink to the host's
    base interpreter, ``pyvenv.cfg`` sits at the prefix root. A prefix with it is an isolated
    interpreter: ``sys.prefix`` is the prefix, and uv or pip install into it.
``ipykernel``, ``pip``
    noarch python packages made of the host's installed files (``ipykernel`` carries all of its
    runtime dependencies). They are collected once per set of host versions and cached.
``alpha`` 1.0 / 2.0, ``beta``, ``gamma``, ``delta``, ``pytool``, ``badmod``, ``needs-missing``
    Small packages for the tests: a dependency, a prefix placeholder, activation scripts, a
    console entry point, a module whose import fails, a dependency no channel has.
``envmgr-echo-kernel``
    Ships a second Jupyter kernel (``share/jupyter/kernels/envmgr-echo``), a tiny echo kernel.

Usage::

    url = build_channel(tmp_path / "channel", extra=synthetic(200, 15))
    python -m jupyter_env_manager.testing.channel DIR [--synthetic N --files F]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import BinaryIO, Literal

PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
"""The placeholder conda-build writes in text files; installers replace it with the prefix."""

TIMESTAMP_MS = 1_700_000_000_000
"""Build timestamp of every generated package (fixed so that archives are reproducible)."""

CACHE_DIR_ENV = "JUPYTER_ENV_MANAGER_TESTING_CACHE"
_LAYOUT_VERSION = 1  # bump when the archive layout changes: cached archives are then rebuilt
_PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"

FileContent = bytes | str | Path
"""A payload file: its bytes, its text (UTF-8), or a file on disk to copy (mode and mtime kept)."""


def current_subdir() -> str:
    """The conda subdir of this machine, e.g. ``linux-64``."""
    from rattler import Subdir

    return str(Subdir.current())


@dataclass
class PackageDef:
    """One conda package to write into a channel.

    ``files`` maps archive paths to contents. For ``noarch="python"`` packages use the noarch
    python layout: ``site-packages/<module>/...`` (the installer moves it into
    ``lib/pythonX.Y/site-packages``) and ``python-scripts/...`` (moved into ``bin``). Text files
    containing :data:`PREFIX_PLACEHOLDER` are declared with ``prefix_placeholder`` and file mode
    ``text``, so the installer writes the target prefix in their place. Files starting with
    ``#!`` are made executable. ``softlinks`` maps archive paths to link targets.
    ``entry_points`` (``"name = module:function"``) become console scripts of noarch python
    packages.
    """

    name: str
    version: str = "1.0"
    build_number: int = 0
    depends: Sequence[str] = ()
    constrains: Sequence[str] = ()
    files: Mapping[str, FileContent] = field(default_factory=dict)
    softlinks: Mapping[str, str] = field(default_factory=dict)
    entry_points: Sequence[str] = ()
    noarch: Literal["generic", "python"] | None = "generic"
    build: str | None = None
    archive_format: Literal["tar.bz2", "conda"] = "tar.bz2"
    timestamp_ms: int = TIMESTAMP_MS

    @property
    def subdir(self) -> str:
        return "noarch" if self.noarch else current_subdir()

    @property
    def build_string(self) -> str:
        if self.build:
            return self.build
        identity = json.dumps(
            [self.name, self.version, list(self.depends), sorted(self.files), self.noarch]
        )
        digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
        return f"{'pyh' if self.noarch == 'python' else 'h'}{digest}_{self.build_number}"

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build_string}"

    @property
    def filename(self) -> str:
        return f"{self.stem}.{self.archive_format}"


# --------------------------------------------------------------------------------------------
# Archive writing


@dataclass
class _Entry:
    path: str
    data: bytes | None = None  # in-memory file
    source: Path | None = None  # file on disk
    link: str | None = None  # softlink target
    mode: int = 0o644
    mtime: int = TIMESTAMP_MS // 1000


def _entries(pkg: PackageDef) -> list[_Entry]:
    entries = []
    for path, content in sorted(pkg.files.items()):
        if isinstance(content, Path):
            st = content.stat()
            entries.append(
                _Entry(path, source=content, mode=st.st_mode & 0o777, mtime=int(st.st_mtime))
            )
        else:
            data = content.encode() if isinstance(content, str) else bytes(content)
            entries.append(_Entry(path, data=data, mode=0o755 if data[:2] == b"#!" else 0o644))
    for path, target in sorted(pkg.softlinks.items()):
        entries.append(_Entry(path, link=target, mode=0o777))
    return sorted(entries, key=lambda e: e.path)


def _paths_entry(entry: _Entry) -> dict:
    if entry.link is not None:
        return {"_path": entry.path, "path_type": "softlink"}
    digest = hashlib.sha256()
    size = 0
    if entry.data is not None:
        digest.update(entry.data)
        size = len(entry.data)
        has_placeholder = PREFIX_PLACEHOLDER.encode() in entry.data
    else:
        assert entry.source is not None
        with entry.source.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        has_placeholder = False  # host files never carry conda's placeholder
    record = {
        "_path": entry.path,
        "path_type": "hardlink",
        "sha256": digest.hexdigest(),
        "size_in_bytes": size,
    }
    if has_placeholder:
        record["prefix_placeholder"] = PREFIX_PLACEHOLDER
        record["file_mode"] = "text"
    return record


def _info_files(pkg: PackageDef, entries: Sequence[_Entry]) -> dict[str, bytes]:
    subdir = pkg.subdir
    index = {
        "name": pkg.name,
        "version": pkg.version,
        "build": pkg.build_string,
        "build_number": pkg.build_number,
        "depends": list(pkg.depends),
        "constrains": list(pkg.constrains),
        "license": "BSD-3-Clause",
        "subdir": subdir,
        "timestamp": pkg.timestamp_ms,
    }
    if pkg.noarch:
        index["noarch"] = pkg.noarch
    else:
        platform, _, arch = subdir.partition("-")
        index["platform"] = platform
        index["arch"] = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}.get(arch, arch)
    paths = {"paths": [_paths_entry(e) for e in entries], "paths_version": 1}
    info = {
        "info/index.json": json.dumps(index, indent=2, sort_keys=True).encode(),
        "info/paths.json": json.dumps(paths, indent=2, sort_keys=True).encode(),
        "info/files": "".join(f"{e.path}\n" for e in entries).encode(),
        "info/about.json": json.dumps({"summary": f"{pkg.name}: a test package"}).encode(),
    }
    if pkg.noarch == "python":
        link = {
            "noarch": {"type": "python", "entry_points": list(pkg.entry_points)},
            "package_metadata_version": 1,
        }
        info["info/link.json"] = json.dumps(link, indent=2).encode()
    return info


def _add_to_tar(tar: tarfile.TarFile, entry: _Entry) -> None:
    info = tarfile.TarInfo(entry.path)
    info.mtime = entry.mtime
    info.mode = entry.mode
    info.uname = info.gname = ""
    if entry.link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link
        tar.addfile(info)
    elif entry.data is not None:
        info.size = len(entry.data)
        tar.addfile(info, io.BytesIO(entry.data))
    else:
        assert entry.source is not None
        info.size = entry.source.stat().st_size
        with entry.source.open("rb") as f:
            tar.addfile(info, f)


class _RawZstdWriter(io.RawIOBase):
    """Writes a valid zstd frame made of raw (stored) blocks: no compression library needed.

    ``.conda`` archives hold ``.tar.zst`` members; storing them uncompressed keeps writing,
    indexing and extracting the large host-collected packages fast.
    """

    _BLOCK = 1 << 17  # 128 KiB, the largest block zstd allows

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._buffer = bytearray()
        # Magic number; frame header descriptor 0 (no content size, no checksum, no dictionary);
        # window descriptor 0x38 = 2**(10 + 7) bytes = one block.
        sink.write(b"\x28\xb5\x2f\xfd\x00\x38")

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buffer += data
        while len(self._buffer) > self._BLOCK:
            self._emit(bytes(self._buffer[: self._BLOCK]), last=False)
            del self._buffer[: self._BLOCK]
        return len(data)

    def _emit(self, block: bytes, *, last: bool) -> None:
        header = (len(block) << 3) | int(last)  # block type 0 = raw
        self._sink.write(header.to_bytes(3, "little") + block)

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
        super().close()


def _write_tar_bz2(target: Path, info: Mapping[str, bytes], entries: Sequence[_Entry]) -> None:
    with tarfile.open(target, "w:bz2", format=tarfile.PAX_FORMAT) as tar:
        for path, data in info.items():  # info/ first, as conda-build does
            _add_to_tar(tar, _Entry(path, data=data))
        for entry in entries:
            _add_to_tar(tar, entry)


def _write_conda(
    target: Path, stem: str, info: Mapping[str, bytes], entries: Sequence[_Entry]
) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        members = (
            (f"pkg-{stem}.tar.zst", list(entries)),
            (f"info-{stem}.tar.zst", [_Entry(p, data=d) for p, d in info.items()]),
        )
        for member, member_entries in members:
            with archive.open(member, "w", force_zip64=True) as raw:
                zst = _RawZstdWriter(raw)  # type: ignore[arg-type]  # a ZipExtFile is binary
                with tarfile.open(fileobj=zst, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for entry in member_entries:
                        _add_to_tar(tar, entry)
                zst.close()


def write_package(pkg: PackageDef, channel_dir: str | os.PathLike[str]) -> Path:
    """Write ``pkg`` as a real conda archive into ``channel_dir/<subdir>/``; return its path."""
    subdir_path = Path(channel_dir) / pkg.subdir
    subdir_path.mkdir(parents=True, exist_ok=True)
    target = subdir_path / pkg.filename
    entries = _entries(pkg)
    info = _info_files(pkg, entries)
    partial = target.with_name(f".{target.name}.partial")
    if pkg.archive_format == "conda":
        _write_conda(partial, pkg.stem, info, entries)
    else:
        _write_tar_bz2(partial, info, entries)
    os.replace(partial, target)
    return target


# --------------------------------------------------------------------------------------------
# Packages of the default channel


def host_base_interpreter() -> Path:
    """The real file of the host's base interpreter (outside any virtual environment)."""
    executable = getattr(sys, "_base_executable", None) or sys.executable
    return Path(os.path.realpath(executable))


def python_package() -> PackageDef:
    """``python`` = the host interpreter, as a venv-like prefix (see the module docstring)."""
    interpreter = host_base_interpreter()
    version = ".".join(str(part) for part in sys.version_info[:3])
    pyvenv_cfg = (
        f"home = {interpreter.parent}\n"
        "include-system-site-packages = false\n"
        f"version = {version}\n"
        f"executable = {interpreter}\n"
    )
    return PackageDef(
        name="python",
        version=version,
        noarch=None,
        files={
            "pyvenv.cfg": pyvenv_cfg,
            f"lib/python{_PY_XY}/site-packages/README.txt": (
                "This directory exists so that 3rd party packages can be installed here.\n"
            ),
        },
        softlinks={
            f"bin/python{_PY_XY}": str(interpreter),
            "bin/python": f"python{_PY_XY}",
            "bin/python3": f"python{_PY_XY}",
        },
    )


def small_packages() -> list[PackageDef]:
    """The small packages the tests use (see the module docstring)."""
    py = ["python"]
    return [
        PackageDef("alpha", "1.0", files={"share/alpha/VERSION": "1.0\n"}),
        PackageDef("alpha", "2.0", depends=["beta >=1"], files={"share/alpha/VERSION": "2.0\n"}),
        PackageDef("beta", "1.0", files={"share/beta/VERSION": "1.0\n"}),
        PackageDef(
            "gamma",
            "1.0",
            files={
                "etc/gamma.conf": f"prefix={PREFIX_PLACEHOLDER}\n",
                "bin/gamma": f"#!/bin/sh\necho gamma from {PREFIX_PLACEHOLDER}\n",
            },
        ),
        PackageDef(
            "delta",
            "1.0",
            files={
                "etc/conda/env_vars.d/delta.json": json.dumps({"DELTA_VAR": "from-env-vars"}),
                "etc/conda/activate.d/delta.sh": (
                    'export DELTA_ACTIVATED=yes\nexport DELTA_HOME="$CONDA_PREFIX/share/delta"\n'
                ),
                "etc/conda/deactivate.d/delta.sh": "unset DELTA_ACTIVATED DELTA_HOME\n",
                "share/delta/README": "delta\n",
            },
        ),
        PackageDef(
            "pytool",
            "1.0",
            noarch="python",
            depends=py,
            files={
                "site-packages/pytool/__init__.py": (
                    '__version__ = "1.0"\n\n\n'
                    "def main():\n"
                    "    import sys\n\n"
                    '    print(f"pytool {__version__} in {sys.prefix}")\n'
                ),
            },
            entry_points=["pytool = pytool:main"],
        ),
        PackageDef(
            "badmod",
            "1.0",
            noarch="python",
            depends=py,
            files={
                "site-packages/badmod/__init__.py": (
                    'raise ImportError("badmod is broken on purpose (jupyter_env_manager tests)")\n'
                ),
            },
        ),
        PackageDef("needs-missing", "1.0", depends=["envmgr-no-such-package >=1"]),
        echo_kernel_package(),
    ]


ECHO_KERNEL = """\
\"\"\"A second kernel an environment ships (jupyter_env_manager tests): it echoes the code it
is given, and ``env NAME`` answers the value of the variable NAME in the kernel's environment.
\"\"\"

import os

from ipykernel.kernelbase import Kernel


class EchoKernel(Kernel):
    implementation = "envmgr-echo"
    implementation_version = "1.0"
    banner = "echo kernel (jupyter_env_manager tests)"
    language_info = {"name": "echo", "mimetype": "text/plain", "file_extension": ".txt"}

    def do_execute(
        self, code, silent, store_history=True, user_expressions=None, allow_stdin=False, **kw
    ):
        words = code.split()
        if len(words) == 2 and words[0] == "env":
            text = os.environ.get(words[1], "<unset>")
        else:
            text = code
        if not silent:
            self.send_response(self.iopub_socket, "stream", {"name": "stdout", "text": text})
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }
"""


def echo_kernel_package() -> PackageDef:
    """``envmgr-echo-kernel``: ships a second Jupyter kernel, as ``r-irkernel`` ships ``ir``.

    Its ``share/jupyter/kernels/envmgr-echo/kernel.json`` runs the prefix's python by absolute
    path (a prefix placeholder, rewritten at install, as conda-forge's kernels do)."""
    kernel_json = {
        "argv": [
            f"{PREFIX_PLACEHOLDER}/bin/python",
            "-m",
            "envmgr_echo_kernel",
            "-f",
            "{connection_file}",
        ],
        "display_name": "Echo",
        "language": "echo",
    }
    return PackageDef(
        "envmgr-echo-kernel",
        "1.0",
        noarch="python",
        depends=["python", "ipykernel"],
        files={
            "site-packages/envmgr_echo_kernel/__init__.py": ECHO_KERNEL,
            "site-packages/envmgr_echo_kernel/__main__.py": (
                "from ipykernel.kernelapp import IPKernelApp\n\n"
                "from envmgr_echo_kernel import EchoKernel\n\n"
                "IPKernelApp.launch_instance(kernel_class=EchoKernel)\n"
            ),
            "share/jupyter/kernels/envmgr-echo/kernel.json": json.dumps(kernel_json, indent=1),
        },
    )


def synthetic(n_packages: int, files_per_package: int = 15) -> list[PackageDef]:
    """``n_packages`` inter-dependent noarch generic packages ``synth-000``, ``synth-001``, ...

    ``synth-<i>`` depends on ``synth-<i-1>`` and ``synth-<i//2>``, so requesting the last one,
    ``synth-<n-1>``, pulls in all ``n_packages``. Each has ``files_per_package`` text files,
    the first of which holds a prefix placeholder (rewritten at install, as real packages are).
    """
    width = max(3, len(str(n_packages - 1)))
    names = [f"synth-{i:0{width}d}" for i in range(n_packages)]
    packages = []
    for i, name in enumerate(names):
        depends = sorted({names[j] for j in (i - 1, i // 2) if 0 <= j < i})
        files: dict[str, FileContent] = {}
        for k in range(files_per_package):
            body = f"{name} file {k}\n" + "lorem ipsum dolor sit amet\n" * (4 + k % 7)
            if k == 0:
                body = f"root={PREFIX_PLACEHOLDER}\n" + body
            files[f"share/synth/{name}/file-{k:03d}.txt"] = body
        packages.append(PackageDef(name, "1.0", depends=depends, files=files))
    return packages


# --------------------------------------------------------------------------------------------
# Packages collected from the host's site-packages (ipykernel, pip), cached


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_closure(roots: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need at run time (markers evaluated for the host)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    environment = default_environment()
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in roots]
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (_canonical(name), extras)
        if key in visited:
            continue
        visited.add(key)
        dist = metadata.distribution(name)
        found.setdefault(_canonical(dist.metadata["Name"]), dist)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({**environment, "extra": extra})  # type: ignore[dict-item]
                for extra in (sorted(extras) or [""])
            ):
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    return sorted(found.values(), key=lambda d: _canonical(d.metadata["Name"]))


def _console_scripts(dist: metadata.Distribution) -> list[str]:
    return [f"{ep.name} = {ep.value}" for ep in dist.entry_points if ep.group == "console_scripts"]


def collect_host_package(
    name: str, roots: Sequence[str], *, depends: Sequence[str] = (), bytecode: bool = True
) -> PackageDef:
    """A noarch python package made of the installed files of ``roots`` and their dependencies.

    Files under site-packages keep their layout (binary modules included, and the ``.pyc``
    files with their sources' mtimes so the byte-code stays valid; ``bytecode=False`` leaves
    them out, as conda-forge's noarch packages have none); data files installed beside the
    interpreter (``share/jupyter/...``) go to the same place in the prefix; the host's ``bin/``
    scripts are replaced by entry points, which the installer writes for the prefix's python.
    """
    files: dict[str, FileContent] = {}
    entry_points: list[str] = []
    data_root = Path(sys.prefix).resolve()
    for dist in distribution_closure(roots):
        site = Path(os.path.normpath(str(dist.locate_file("")))).resolve()
        entry_points += _console_scripts(dist)
        for record in dist.files or []:
            source = Path(os.path.normpath(site / record))
            if not source.is_file() or (not bytecode and source.suffix == ".pyc"):
                continue
            if source.is_relative_to(site):
                files[f"site-packages/{source.relative_to(site).as_posix()}"] = source
            elif source.is_relative_to(data_root):
                relative = source.relative_to(data_root).as_posix()
                if not relative.startswith("bin/"):
                    files[relative] = source
    version = metadata.version(roots[0])
    return PackageDef(
        name=name,
        version=version,
        noarch="python",
        depends=depends,
        files=files,
        entry_points=sorted(set(entry_points)),
        archive_format="conda",
    )


def default_cache_dir() -> Path:
    """Where collected host packages are cached: ``$JUPYTER_ENV_MANAGER_TESTING_CACHE``, else
    ``$XDG_CACHE_HOME/jupyter_env_manager/testing`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jupyter_env_manager" / "testing"


_HOST_PACKAGES = {
    # conda name: (host distributions, conda depends)
    "ipykernel": (["ipykernel"], ["python >=3.10"]),
    "pip": (["pip"], ["python >=3.8"]),
}


def host_package_archive(
    name: str, cache_dir: str | os.PathLike[str] | None = None, bytecode: bool = True
) -> Path:
    """The cached archive of a host-collected package (``ipykernel`` or ``pip``), made if needed
    (``bytecode``: with the host's ``.pyc`` files, see :func:`collect_host_package`).

    The cache key is the versions of every collected distribution, the interpreter and the
    layout, so upgrading anything on the host makes a new archive.
    """
    roots, depends = _HOST_PACKAGES[name]
    dists = distribution_closure(roots)
    key_source = json.dumps(
        {
            "layout": _LAYOUT_VERSION,
            "python": sys.version,
            "interpreter": str(host_base_interpreter()),
            "dists": [(d.metadata["Name"], d.version, str(d.locate_file(""))) for d in dists],
            "depends": depends,
            **({} if bytecode else {"bytecode": False}),  # the archives made before keep their key
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()[:12]
    version = metadata.version(roots[0])
    build = f"pyh{key[:8]}_0"
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cached = directory / f"{name}-{version}-{build}.conda"
    if not cached.is_file():
        pkg = collect_host_package(name, roots, depends=depends, bytecode=bytecode)
        pkg.build = build
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            made = write_package(pkg, scratch)
            os.replace(made, cached)
    return cached


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# --------------------------------------------------------------------------------------------
# The channel


def channel_url(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URL of a channel directory."""
    return Path(path).resolve().as_uri()


async def build_channel_async(
    path: str | os.PathLike[str],
    *,
    extra: Iterable[PackageDef] = (),
    defaults: bool = True,
    host_packages: Sequence[str] = ("ipykernel", "pip"),
    cache_dir: str | os.PathLike[str] | None = None,
    bytecode: bool = True,
) -> str:
    """Write (or add to) a channel at ``path`` and index it; return its ``file://`` URL.

    ``defaults`` writes ``python`` and the small test packages; ``host_packages`` adds the
    cached host-collected packages (``bytecode=False``: without their ``.pyc`` files, as
    conda-forge's noarch packages); ``extra`` adds more. Calling it again on the same directory
    adds packages and re-indexes (clear a reused ``rattler.Gateway``'s cache afterwards).
    """
    import rattler.index

    root = Path(path)
    for subdir in ("noarch", current_subdir()):
        (root / subdir).mkdir(parents=True, exist_ok=True)
    packages = [python_package(), *small_packages()] if defaults else []
    packages += list(extra)
    loop = asyncio.get_running_loop()

    def write_all() -> None:
        for pkg in packages:
            write_package(pkg, root)
        for name in host_packages:
            archive = host_package_archive(name, cache_dir, bytecode)
            _link_or_copy(archive, root / "noarch" / archive.name)

    await loop.run_in_executor(None, write_all)
    await rattler.index.index_fs(root, write_zst=False, write_shards=False, force=True)
    return channel_url(root)


def build_channel(path: str | os.PathLike[str], **kwargs) -> str:
    """Synchronous :func:`build_channel_async` (usable with or without a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(build_channel_async(path, **kwargs))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, build_channel_async(path, **kwargs)).result()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_env_manager.testing.channel",
        description="Write a local conda channel of real test packages and print its URL.",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="add N inter-dependent packages synth-000...; synth-<N-1> pulls all",
    )
    parser.add_argument(
        "--files",
        type=int,
        default=15,
        metavar="F",
        help="files per synthetic package (default 15)",
    )
    parser.add_argument(
        "--no-host-packages",
        action="store_true",
        help="skip ipykernel and pip (collected from this interpreter)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"cache of collected host packages (default: {default_cache_dir()})",
    )
    args = parser.parse_args(argv)
    extra = synthetic(args.synthetic, args.files) if args.synthetic else []
    host = () if args.no_host_packages else ("ipykernel", "pip")
    print(build_channel(args.directory, extra=extra, host_packages=host, cache_dir=args.cache_dir))


if __name__ == "__main__":
    main()
