"""Bundles: one tar file that rebuilds an environment's exact lock on a machine with no network.

A bundle holds the version in use's ``spec.json``, its locks (``rattler-lock.yml``,
``lock.json``), every conda package archive of the lock (``conda/<file>``: taken from the
channel when it is a ``file://`` one or the package cache keeps the archive, else fetched) and
every wheel of the pip layer (``wheels/<file>``: from ``pip_find_links`` directories), with
``manifest.json`` first: the sha256 and size of every other member.

Importing checks everything before creating anything: only the manifest's members, plain file
names, each checksum, an archive for every locked record (its sha256 also against the lock) and
a wheel for every pip distribution; a refusal (400) names the files. The bundle is then kept in
the environment's metadata directory as a ``file://`` source, and a build of kind ``copy``
links exactly its lock from there, offline, with the pip layer from its wheels only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import tarfile
import urllib.request
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .diagnose import rattler_client, redact, restore_credentials
from .errors import ValidationError
from .lockfile import lock_records, read_lock, write_locks
from .spec import EnvSpec, validate_name, validate_scope
from .store import Build, EnvRecord, now

if TYPE_CHECKING:
    from .service import EnvService

FORMAT = "jupyter-env-manager-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MEMBER = re.compile(
    r"spec\.json|lock\.json|rattler-lock\.yml|(conda|wheels)/[A-Za-z0-9_+!-][A-Za-z0-9._+!-]*"
)
_CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hex(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex() if isinstance(value, (bytes, bytearray)) else str(value)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


# -- export ----------------------------------------------------------------------------------------


def _archive(record: Any, pkgs_dir: Path, work: Path) -> Path:
    """The archive of ``record``: a file:// channel's file, the package cache's, else fetched."""
    url = str(record.url)
    if url.startswith("file://"):
        path = Path(urllib.request.url2pathname(url.removeprefix("file://")))
        if path.is_file():
            return path
    cached = pkgs_dir / str(record.file_name)
    if cached.is_file():
        return cached
    target = work / str(record.file_name)
    try:  # rattler's client: the channel's credentials from rattler's stores, as builds do
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own
            pool.submit(lambda: asyncio.run(_download(url, target))).result()
    except Exception as err:
        raise ValidationError(
            f"The archive of {record.name.normalized} could not be fetched from "
            f"{redact(url)}: {redact(str(err))}",
            field="format",
            item=str(record.file_name),
        ) from None
    return target


async def _download(url: str, target: Path) -> None:
    from rattler.package_streaming import download_to_path

    await download_to_path(rattler_client(), url, target)


def _wheel(dist: dict[str, str], find_links: list[str]) -> Path | None:
    want = (_norm(dist["name"]), dist["version"])
    for link in find_links:
        directory = Path(link.removeprefix("file://"))
        if not directory.is_dir():
            continue
        for wheel in directory.glob("*.whl"):
            parts = wheel.name.split("-")
            if len(parts) >= 5 and (_norm(parts[0]), parts[1]) == want:
                return wheel
    return None


def export_bundle(svc: EnvService, scope: str, name: str, output: str | os.PathLike[str]) -> dict:
    """Write the bundle of ``scope/name``'s version in use to ``output``; what it holds."""
    store = svc.managed(scope, name)
    version = store.active_version(name)
    if not version:
        raise ValidationError(
            f"Environment {name!r} has no built version: there is nothing to bundle",
            field="format",
            item="bundle",
        )
    build_dir = store.build_dir(name, version)
    records = lock_records(build_dir)
    spec = store.read_env(name).spec
    restore_credentials(records, list(svc.settings.channels) + list(spec.channels))
    pip = read_lock(build_dir)["pip"]
    wheels = {d["name"]: _wheel(d, list(svc.settings.pip_find_links)) for d in pip}
    no_wheel = sorted(n for n, w in wheels.items() if w is None)
    if no_wheel:
        raise ValidationError(
            "No wheel in c.EnvManager.pip_find_links for the pip layer's " + ", ".join(no_wheel),
            field="format",
            item=", ".join(no_wheel),
        )
    out = Path(output)
    work = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        members: list[tuple[str, Path]] = [
            (f, build_dir / f) for f in ("spec.json", "lock.json", "rattler-lock.yml")
        ]
        for record in records:
            archive = _archive(record, Path(svc.settings.pkgs_dir), work)
            members.append((f"conda/{record.file_name}", archive))
        members += [(f"wheels/{w.name}", w) for w in wheels.values() if w is not None]
        files = [
            {"path": arc, "sha256": sha256_of(path), "size": path.stat().st_size}
            for arc, path in members
        ]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "environment": {"scope": scope, "name": name, "version": version},
            "created_at": now(),
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        tmp = work / "bundle.tar"
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(work / MANIFEST, MANIFEST, filter=_plain)
            for arc, path in members:
                tar.add(path, arc, filter=_plain)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"path": str(out), "files": len(files), "conda": len(records), "pip": len(pip)}


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


# -- import ----------------------------------------------------------------------------------------


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.getmember(MANIFEST)
        if not member.isfile() or member.size > MAX_MANIFEST_BYTES:
            raise KeyError(MANIFEST)
        handle = tar.extractfile(member)
        manifest = json.loads(handle.read() if handle else b"")
    except (KeyError, ValueError):
        raise ValidationError("The bundle has no valid manifest.json", field="bundle") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("format") != FORMAT or not isinstance(files, list):
        raise ValidationError("The file is not a jupyter_env_manager bundle", field="bundle")
    return manifest


def unpack(source: str | os.PathLike[str] | IO[bytes], target: Path) -> dict[str, Any]:
    """Check ``source`` and unpack it into ``target`` (created); the manifest. Raises
    ValidationError naming every bad member (and removes ``target``)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            tar = tarfile.open(source, mode="r:")
        else:
            tar = tarfile.open(fileobj=source, mode="r:")
    except (OSError, tarfile.TarError) as err:
        raise ValidationError(
            f"The bundle is not a readable tar file: {err}", field="bundle"
        ) from None
    target.mkdir(parents=True)
    try:
        with tar:
            manifest = _read_manifest(tar)
            expected: dict[str, Any] = {
                str(f.get("path")): f.get("sha256")
                for f in manifest["files"]
                if isinstance(f, dict)
            }
            strange = sorted(str(p) for p in expected if not _MEMBER.fullmatch(str(p)))
            if strange:
                raise ValidationError(
                    f"The bundle's manifest names unexpected files: {', '.join(strange[:20])}",
                    field="bundle",
                    item=strange[0],
                )
            wrong: list[str] = []
            seen: set[str] = set()
            for member in tar:
                if member.name == MANIFEST:
                    continue
                if member.name not in expected or not member.isfile():
                    raise ValidationError(
                        f"The bundle holds a file its manifest does not list: {member.name}",
                        field="bundle",
                        item=member.name[:200],
                    )
                path = target / member.name
                path.parent.mkdir(exist_ok=True)
                digest = hashlib.sha256()
                handle = tar.extractfile(member)
                assert handle is not None
                with open(path, "wb") as out:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                seen.add(member.name)
                if digest.hexdigest() != expected[member.name]:
                    wrong.append(member.name)
            missing = sorted(set(expected) - seen)
            problems = []
            if wrong:
                problems.append("wrong checksum: " + ", ".join(sorted(wrong)))
            if missing:
                problems.append("missing: " + ", ".join(missing))
            if problems:
                raise ValidationError(
                    "The bundle is damaged (" + "; ".join(problems) + "): nothing was created",
                    field="bundle",
                    item=(wrong + missing)[0],
                )
            _check_lock(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return manifest


def _check_lock(target: Path) -> None:
    """Every locked record has its archive (same sha256), every pip dist its wheel."""
    for needed in ("spec.json", "lock.json", "rattler-lock.yml"):
        if not (target / needed).is_file():
            raise ValidationError(f"The bundle has no {needed}", field="bundle", item=needed)
    missing = []
    for record in lock_records(target):
        archive = target / "conda" / str(record.file_name)
        locked = _hex(record.sha256)
        if not archive.is_file() or (locked and sha256_of(archive) != locked):
            missing.append(str(record.file_name))
    wheels = [w.name.split("-")[:2] for w in (target / "wheels").glob("*.whl")]
    have = {(_norm(n), v) for n, v in wheels}
    for dist in read_lock(target)["pip"]:
        if (_norm(dist["name"]), dist["version"]) not in have:
            missing.append(f"{dist['name']}=={dist['version']} (wheel)")
    if missing:
        raise ValidationError(
            "The bundle lacks archives of its lock (or they differ from it): "
            + ", ".join(sorted(missing))
            + ": nothing was created",
            field="bundle",
            item=sorted(missing)[0],
        )


def import_bundle(
    svc: EnvService,
    source: str | os.PathLike[str] | IO[bytes],
    scope: Any = "local",
    name: Any = None,
    actor: str | None = None,
) -> tuple[dict[str, Any], Build]:
    """Create an environment from a bundle and build exactly its lock, offline."""
    scope = validate_scope(scope, "scope")
    store = svc.store(scope)
    store.check_writable()
    store.ensure()
    unpacked = store.meta / "staging" / f"bundle-{uuid.uuid4().hex}"
    manifest = unpack(source, unpacked)
    try:
        spec_data = json.loads((unpacked / "spec.json").read_text())
        original = manifest.get("environment", {}).get("name")
        name = validate_name(name if name not in (None, "") else original)
        spec = EnvSpec.from_dict({**spec_data, "name": name})
        store.check_prefix_length(name)
        stamp = now()
        from_env = manifest.get("environment") or {}
        origin = {"bundle": {k: from_env.get(k) for k in ("scope", "name", "version")}}
        store.create_env(EnvRecord(spec, stamp, stamp, svc.actor(actor), origin))
    except BaseException:
        shutil.rmtree(unpacked, ignore_errors=True)
        raise
    kept = store.env_dir(name) / "bundle"
    os.replace(unpacked, kept)
    # The lock's records now point at the bundle's archives: the build reads no network.
    records = lock_records(kept)
    for record in records:
        record.url = (kept / "conda" / str(record.file_name)).as_uri()
    channel = (kept / "conda").as_uri()
    write_locks(kept, records, read_lock(kept)["pip"], [channel])
    if store.access is not None:
        store.access.open_tree(kept)
    svc.emit("environment", {"action": "created", "scope": scope, "name": name})
    build = svc.builds.queue(
        store,
        name,
        "copy",
        origin["bundle"],
        spec,
        actor,
        source_build_dir=str(kept),
        offline=True,
        pip_find_links=[str(kept / "wheels")],
        pip_no_index=True,
    )
    build = svc.runner.submit(scope, name, build)
    return svc.envs.get(scope, name, versions=False), build
