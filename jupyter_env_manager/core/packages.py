"""Packages: what a version contains, what changed between two versions, finding new ones.

Everything a version contains is read from its lock (``builds/<N>/lock.json``), never by
scanning the prefix: listing any version, even one no longer in use, costs one JSON read. A
diff compares two locks, of one environment or of two (a local environment and its shared
copy, a draft and the published version), and has one shape for every door. Search asks the
channels' repodata through rattler's gateway (sharded repodata where a channel offers it),
cached in the package cache on disk and, for ``GATEWAY_TTL_S``, in memory: one gateway serves
the searches of that time, so a warm search does not parse a channel's repodata again. A
search for an environment lists only the versions its python can install.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bodies import parse_version
from .errors import EnvManagerError, ValidationError
from .lockfile import read_lock
from .spec import EnvSpec, package_name
from .store import read_json

if TYPE_CHECKING:
    from .service import EnvService

SEARCH_LIMIT = 25
#: How long one rattler gateway (and the repodata it has read) serves searches; a new one
#: then sees what the channels published meanwhile.
GATEWAY_TTL_S = 300.0
SEARCH_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


class ChannelUnavailable(EnvManagerError):
    """A channel could not be read (network, missing, malformed): 502."""

    status = 502


class Packages:
    def __init__(self, service: EnvService):
        self.svc = service
        self._gateway: Any = None
        self._gateway_at = 0.0
        self._gateway_lock = threading.Lock()

    # -- installed ---------------------------------------------------------------------------

    def _version_dir(self, scope: str, name: str, version: Any) -> tuple[int, Path]:
        store = self.svc.managed(scope, name)
        if version in (None, ""):
            number = store.active_version(name)
            if not number:
                raise ValidationError(
                    f"Environment {name!r} has no built version yet", field="version", item=name
                )
        else:
            number = parse_version(version)
        build = store.read_build(name, number)  # 404 for a version that never existed
        directory = store.build_dir(name, number)
        if build.status != "succeeded" or not (directory / "lock.json").exists():
            raise ValidationError(
                f"Version {number} of {name!r} has no lock: it did not build ({build.status})",
                field="version",
                item=str(number),
            )
        return number, directory

    def installed(self, scope: str, name: str, version: Any = None) -> dict[str, Any]:
        """The packages of a version (default: the one in use), from its lock."""
        number, directory = self._version_dir(scope, name, version)
        packages = lock_packages(directory, name)
        return {"scope": scope, "name": name, "version": number, "packages": packages}

    # -- diff --------------------------------------------------------------------------------

    def diff(
        self,
        scope: str,
        name: str,
        version_from: Any,
        version_to: Any = None,
        other: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """What changed from ``scope/name`` v``from`` to v``to`` (of ``other``, if given).

        ``to`` defaults to the version in use. The answer lists ``added``, ``removed``,
        ``upgraded``, ``downgraded`` and ``rebuilt`` (same version, other build) packages.
        """
        to_scope, to_name = other or (scope, name)
        before = self.installed(scope, name, version_from)
        after = self.installed(to_scope, to_name, version_to)
        return {
            "from": {k: before[k] for k in ("scope", "name", "version")},
            "to": {k: after[k] for k in ("scope", "name", "version")},
            **diff_packages(before["packages"], after["packages"]),
        }

    # -- search ------------------------------------------------------------------------------

    def search(
        self, query: Any, scope: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Packages whose name starts with ``query`` in the channels an environment builds from
        (``scope``/``name``), else the configured channels; with their available versions."""
        if not isinstance(query, str) or not SEARCH_RE.fullmatch(query.strip().lower()):
            raise ValidationError(
                "'q' must be the start of a package name: letters, digits, '.', '_' or '-'",
                field="q",
                item=str(query)[:100],
            )
        prefix = query.strip().lower()
        channels = list(self.svc.settings.channels)
        python = None
        if scope is not None or name is not None:
            if scope is None or name is None:
                raise ValidationError("Give both 'scope' and 'name', or neither", field="name")
            store = self.svc.managed(scope, name)
            channels = store.read_env(name).spec.channels or channels
            python = self._env_python(scope, name)
        # In a thread of its own: a kernel running %envmgr already has a running event loop.
        with ThreadPoolExecutor(1) as pool:
            results = pool.submit(asyncio.run, self._search(prefix, channels, python)).result()
        return {"query": prefix, "channels": channels, "packages": results}

    def _env_python(self, scope: str, name: str) -> str | None:
        """The python version of an environment: the one in its lock, else a plain version
        its spec (or the default) names; None when unknown (no filtering then)."""
        store = self.svc.managed(scope, name)
        number = store.active_version(name)
        if number and (store.build_dir(name, number) / "lock.json").exists():
            for entry in read_lock(store.build_dir(name, number)).get("conda", []):
                if entry.get("name") == "python":
                    return str(entry["version"])
        wanted = store.read_env(name).spec.python or self.svc.settings.default_python
        return wanted if wanted and re.fullmatch(r"\d+(\.\d+)*", wanted) else None

    def gateway(self) -> Any:
        """The rattler gateway of searches, new every ``GATEWAY_TTL_S`` seconds."""
        from .diagnose import make_gateway  # credentials and offline, as builds have them

        with self._gateway_lock:
            now = time.monotonic()
            if self._gateway is None or now - self._gateway_at > GATEWAY_TTL_S:
                settings = self.svc.settings
                self._gateway = make_gateway(settings.pkgs_dir, settings.offline)
                self._gateway_at = now
            return self._gateway

    async def _search(
        self, prefix: str, channels: list[str], python: str | None = None
    ) -> list[dict[str, Any]]:
        from rattler import Platform, Version, VersionSpec

        gateway = self.gateway()
        platforms = [Platform.current(), Platform("noarch")]
        py_version = Version(python) if python else None
        try:
            names = await gateway.names(channels, platforms)
        except Exception as err:  # rattler's own exception types
            raise ChannelUnavailable(_channel_error(channels, err)) from None
        matches = sorted(
            {n.normalized for n in names if n.normalized.startswith(prefix)},
            key=lambda n: (n != prefix, len(n), n),
        )[:SEARCH_LIMIT]
        if not matches:
            return []
        try:
            per_source = await gateway.query(channels, platforms, matches, recursive=False)
        except Exception as err:
            raise ChannelUnavailable(_channel_error(channels, err)) from None
        found: dict[str, dict[str, Any]] = {}
        for records in per_source:
            for r in records:
                if py_version is not None and not _python_allows(r, py_version, VersionSpec):
                    continue
                entry = found.setdefault(
                    r.name.normalized,
                    {"name": r.name.normalized, "versions": {}, "channels": set()},
                )
                entry["versions"][str(r.version)] = r.version
                entry["channels"].add(_channel_name(str(r.channel)) if r.channel else None)
        results = []
        for pkg in matches:
            if pkg not in found:
                continue
            entry = found[pkg]
            versions = sorted(entry["versions"].values(), reverse=True)
            results.append(
                {
                    "name": pkg,
                    "latest": str(versions[0]),
                    "versions": [str(v) for v in versions],
                    "channels": sorted(c for c in entry["channels"] if c),
                }
            )
        return results


def _python_allows(record: Any, python: Any, version_spec: Any) -> bool:
    """Whether a record's dependency on python (if any) accepts version ``python``."""
    for dep in record.depends:
        parts = dep.split(None, 1)
        if parts[0] != "python" or len(parts) == 1:
            continue
        constraint = parts[1].split()[0]  # "python >=3.8" or "python 3.11.* *_cpython"
        try:
            if not version_spec(constraint).matches(python):
                return False
        except Exception:
            continue  # a constraint we cannot read does not hide the package
    return True


def lock_packages(directory: Path, name: str) -> list[dict[str, Any]]:
    """The packages of a build directory's lock (``lock.json``, ``spec.json``), sorted."""
    lock = read_lock(directory)
    spec = EnvSpec.from_dict(read_json(directory / "spec.json") or {"name": name})
    wanted_conda = {package_name(s, "conda") for s in spec.conda} | {"python"}
    wanted_pip = {package_name(s, "pip") for s in spec.pip}
    packages = [
        {
            "name": entry["name"],
            "version": entry["version"],
            "build": entry.get("build"),
            "channel": _channel_name(entry.get("channel")),
            "kind": "conda",
            "size": entry.get("size"),
            "requested": entry["name"] in wanted_conda,
        }
        for entry in lock.get("conda", [])
    ]
    packages += [
        {
            "name": dist["name"],
            "version": dist["version"],
            "build": None,
            "channel": None,
            "kind": "pip",
            "size": None,
            "requested": _pep503(dist["name"]) in wanted_pip,
        }
        for dist in lock.get("pip", [])
    ]
    packages.sort(key=lambda p: (p["name"].lower(), p["kind"]))
    return packages


def diff_packages(old_list: list[dict[str, Any]], new_list: list[dict[str, Any]]) -> dict:
    """``added``, ``removed``, ``upgraded``, ``downgraded`` and ``rebuilt`` packages."""
    old = {(p["kind"], _key(p)): p for p in old_list}
    new = {(p["kind"], _key(p)): p for p in new_list}
    out: dict[str, Any] = {
        "added": [],
        "removed": [],
        "upgraded": [],
        "downgraded": [],
        "rebuilt": [],
    }
    for key in sorted(new.keys() - old.keys(), key=lambda k: k[1]):
        p = new[key]
        out["added"].append({"name": p["name"], "kind": p["kind"], "version": p["version"]})
    for key in sorted(old.keys() - new.keys(), key=lambda k: k[1]):
        p = old[key]
        out["removed"].append({"name": p["name"], "kind": p["kind"], "version": p["version"]})
    for key in sorted(old.keys() & new.keys(), key=lambda k: k[1]):
        a, b = old[key], new[key]
        if (a["version"], a["build"]) == (b["version"], b["build"]):
            continue
        change = {
            "name": b["name"],
            "kind": b["kind"],
            "from": a["version"],
            "to": b["version"],
        }
        order = _compare(a["kind"], a["version"], b["version"])
        what = "upgraded" if order < 0 else "downgraded" if order > 0 else "rebuilt"
        if what == "rebuilt":
            change["from"] = f"{a['version']} {a['build']}"
            change["to"] = f"{b['version']} {b['build']}"
        out[what].append(change)
    return out


def _channel_name(url: str | None) -> str | None:
    """conda-forge for https://conda.anaconda.org/conda-forge/, the URL otherwise."""
    if not url:
        return None
    match = re.fullmatch(r"https://conda\.anaconda\.org/([^/]+)/?", url)
    return match.group(1) if match else url.rstrip("/")


def _channel_error(channels: list[str], err: Exception) -> str:
    from .diagnose import channel_error

    return channel_error(err, channels, f"Could not read the channels {', '.join(channels)}")


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _key(package: dict[str, Any]) -> str:
    return _pep503(package["name"]) if package["kind"] == "pip" else package["name"]


def _compare(kind: str, a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``."""
    try:
        if kind == "pip":
            from packaging.version import Version as PipVersion

            va, vb = PipVersion(a), PipVersion(b)
        else:
            from rattler import Version

            va, vb = Version(a), Version(b)  # type: ignore[assignment]
    except Exception:
        va, vb = a, b  # type: ignore[assignment]
    return (va > vb) - (va < vb)
