"""Private wheels: a wheel file of the user's own, added to an environment.

The wheel is checked (a ``.whl`` whose file name parses, whose ``dist-info/METADATA`` says the
same name and version, and one of whose tags this environment's python on this machine
supports), stored with the environment's metadata (``<store>/.envmgr/envs/NAME/wheels/``,
with the store's modes: readable by the team in a shared store), and added to the spec: ``pip``
gets ``name==version`` and ``wheels`` maps the name to the file. The build installs that
requirement from the stored file (uv, by path), records its sha256 in the lock, and a copy
takes the stored wheels along (the copy's worker copies them from the source environment).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ValidationError
from .spec import BARE_VERSION_RE, shown, validate_fields, with_packages

if TYPE_CHECKING:
    from .service import EnvService
    from .store import Build, Store

MAX_WHEEL_BYTES = 64 * 1024 * 1024
WHEEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+!-]{0,200}\.whl")
WHEELS = "wheels"
METADATA_RE = re.compile(r"[^/]+\.dist-info/METADATA")


class WheelTooLarge(ValidationError):
    status = 413


def wheels_dir(env_dir: Path) -> Path:
    """Where an environment's private wheels are kept (beside its builds)."""
    return env_dir / WHEELS


def check_wheel(filename: Any, data: bytes, python: str) -> tuple[str, str]:
    """(canonical name, version) of a wheel that fits ``python`` (``"3.11"``) on this machine;
    :class:`ValidationError` saying why not."""
    from packaging.tags import compatible_tags, cpython_tags, platform_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    if not isinstance(filename, str) or not WHEEL_NAME_RE.fullmatch(filename):
        raise ValidationError(
            f"Invalid wheel file name {shown(filename)}: use the wheel's own file name "
            "(NAME-VERSION-PYTHON-ABI-PLATFORM.whl)",
            field="filename",
            item=str(filename)[:200],
        )
    if len(data) > MAX_WHEEL_BYTES:
        raise WheelTooLarge(
            f"The wheel is larger than {MAX_WHEEL_BYTES // (1024 * 1024)} MiB", field="wheel"
        )
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as err:
        raise ValidationError(
            f"Invalid wheel file name {shown(filename)}: {err}", field="filename", item=filename
        ) from None
    xy = tuple(int(p) for p in python.split(".")[:2])
    supported = set(cpython_tags(xy, platforms=list(platform_tags())))
    supported |= set(compatible_tags(xy, platforms=list(platform_tags())))
    if not tags & supported:
        wanted = ", ".join(sorted(str(t) for t in tags))
        raise ValidationError(
            f"The wheel {filename} ({wanted}) does not fit this environment's python {python} "
            "on this machine",
            field="wheel",
            item=filename,
        )
    _check_metadata(filename, data, str(name), str(version))
    return str(name), str(version)


def _check_metadata(filename: str, data: bytes, name: str, version: str) -> None:
    import zipfile  # here, not at the top: a build worker imports this module, uploads use this

    from packaging.utils import canonicalize_name
    from packaging.version import Version

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            metadata = [
                n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
            ]
            if len(metadata) != 1:
                raise ValidationError(
                    f"The wheel {filename} has no single .dist-info/METADATA", field="wheel"
                )
            with archive.open(metadata[0]) as f:
                head = f.read(64 * 1024).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ValidationError(f"The wheel {filename} is not a zip archive", field="wheel") from None
    fields: dict[str, str] = {}
    for line in head.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    try:
        same = canonicalize_name(fields.get("Name", "")) == name and Version(
            fields.get("Version", "")
        ) == Version(version)
    except ValueError:
        same = False
    if not same:
        raise ValidationError(
            f"The wheel {filename} says it is {fields.get('Name')!r} {fields.get('Version')!r}: "
            "its file name must match its metadata",
            field="wheel",
            item=filename,
        )


def sha256_of(path: Path) -> str:
    import hashlib  # here, not at the top: see _check_metadata

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def private_requirements(pip: list[str], wheels: dict[str, str], directory: Path) -> list[str]:
    """The pip requirements a build hands uv: a requirement of a private wheel is its file."""
    from .spec import package_name

    return [
        str(directory / wheels[package_name(req, "pip")])
        if package_name(req, "pip") in wheels
        else req
        for req in pip
    ]


def annotate(dists: list[dict[str, str]], directory: Path) -> list[dict[str, str]]:
    """The lock's pip entries, those installed from a stored wheel with its file and sha256."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    stored: dict[tuple[str, str], Path] = {}
    try:
        for path in directory.iterdir():
            try:
                name, version, _b, _t = parse_wheel_filename(path.name)
            except ValueError:
                continue
            stored[(str(name), str(version))] = path
    except OSError:
        return dists
    out = []
    for dist in dists:
        found = stored.get((canonicalize_name(dist["name"]), dist["version"]))
        if found is not None:
            dist = {**dist, "wheel": found.name, "sha256": sha256_of(found)}
        out.append(dist)
    return out


def import_wheels(source: Path, target: Path, apply_mode=None) -> list[str]:
    """Copy the stored wheels of another environment (a copy's source) into ``target``."""
    import shutil

    copied: list[str] = []
    if not source.is_dir() or source == target:
        return copied
    target.mkdir(exist_ok=True)
    if apply_mode:
        apply_mode(target)
    for path in sorted(source.iterdir()):
        if not WHEEL_NAME_RE.fullmatch(path.name) or (target / path.name).exists():
            continue
        tmp = target / f".{path.name}.tmp"
        shutil.copyfile(path, tmp)
        os.replace(tmp, target / path.name)
        if apply_mode:
            apply_mode(target / path.name)
        copied.append(path.name)
    return copied


class Wheels:
    """The facade part for private wheels (``service.wheels``)."""

    def __init__(self, service: EnvService):
        self.svc = service

    def python_of(self, store: Store, name: str) -> str:
        """The environment's python (X.Y): of the version in use, else of its spec."""
        from .lockfile import read_lock

        version = store.active_version(name)
        if version:
            try:
                lock = read_lock(store.build_dir(name, version))
                for entry in lock.get("conda", []):
                    if entry["name"] == "python":
                        return ".".join(entry["version"].split(".")[:2])
            except (OSError, ValueError):
                pass
        spec = store.read_env(name).spec
        python = spec.python or self.svc.settings.default_python
        return python if BARE_VERSION_RE.fullmatch(python) else self.svc.settings.default_python

    def add(
        self, scope: str, name: str, filename: Any, data: bytes, actor: str | None = None
    ) -> Build:
        """Store the wheel with the environment and build the spec with it (recorded only if
        the build succeeds)."""
        svc = self.svc
        store = svc.managed(scope, name)
        store.check_writable(name)
        dist, version = check_wheel(filename, data, self.python_of(store, name))
        directory = wheels_dir(store.env_dir(name))
        directory.mkdir(exist_ok=True)
        if store.access is not None:
            store.access.apply(directory)
        tmp = directory / f".{filename}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        if store.access is not None:
            store.access.apply(tmp)
        os.replace(tmp, directory / filename)
        current = store.read_env(name).spec
        pip = with_packages(list(current.pip), [f"{dist}=={version}"], "pip")
        fields = validate_fields({"pip": pip}, ("pip",), bool(svc.settings.pip_allow_direct_urls))
        spec = svc.envs.merged_spec(scope, name, current, fields)
        spec.wheels = {**current.wheels, dist: filename}
        build = svc.builds.queue(
            store,
            name,
            "build",
            None,
            spec,
            actor,
            record_spec=True,
            **svc.builds._base(scope, spec),
        )
        return svc.runner.submit(scope, name, build)
