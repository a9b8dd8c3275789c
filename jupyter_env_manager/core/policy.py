"""The policy checks an approver sees on a publish request, computed once for every door.

Three checks, each ``{"check", "ok", "items", "message", "blocking"}``:

- ``channels``: every conda package comes from one of ``c.EnvManager.allowed_channels`` (none
  configured: every channel passes);
- ``blocked_packages``: no conda package matches one of ``c.EnvManager.blocked_packages``
  (conda match specs, e.g. ``openssl<3`` or ``conda-forge::pycrypto``; a bare name also matches
  a pip distribution of that name);
- ``pip_direct``: no pip requirement of the spec is a direct URL or a local path (they bypass
  the configured index, so a teammate cannot tell what was installed).

A failed check is ``blocking`` when ``c.EnvManager.enforce_policy`` is true: then the request
cannot be approved (409 naming the checks); otherwise it is shown as a warning.
"""

from __future__ import annotations

import re
from typing import Any

from .packages import _channel_name, _pep503

DIRECT_RE = re.compile(r"(@|://|^\.{0,2}/|^~|^file:|^git\+|\.whl$|\.tar\.gz$|\.zip$)")


def normalize_channel(channel: str | None) -> str:
    """``conda-forge`` for a name or https://conda.anaconda.org/conda-forge/, else the URL."""
    if not channel:
        return ""
    channel = channel.strip()
    if "://" not in channel and not channel.startswith("/"):
        return channel.strip("/")
    if channel.startswith("/"):
        channel = "file://" + channel
    return _channel_name(channel) or ""


def check_channels(lock: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
    if not allowed:
        return _result("channels", [], "No allowed_channels configured: every channel passes")
    ok = {normalize_channel(c) for c in allowed}
    bad = sorted(
        {
            f"{e['name']} {e['version']} ({normalize_channel(e.get('channel')) or 'no channel'})"
            for e in lock.get("conda", [])
            if normalize_channel(e.get("channel")) not in ok
        }
    )
    message = (
        f"Packages from channels outside allowed_channels ({', '.join(sorted(ok))}): "
        + ", ".join(bad)
        if bad
        else f"Every package comes from an allowed channel ({', '.join(sorted(ok))})"
    )
    return _result("channels", bad, message)


def check_blocked(records: list[Any], pip: list[dict[str, str]], blocked: list[str]) -> dict:
    """``records``: the lock's rattler records (matched by rattler's MatchSpec)."""
    if not blocked:
        return _result("blocked_packages", [], "No blocked_packages configured")
    from rattler import MatchSpec

    hits: set[str] = set()
    for text in blocked:
        spec = MatchSpec(text)
        for record in records:
            if spec.matches(record):
                hits.add(f"{record.name.normalized} {record.version} (matches {text!r})")
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text.strip()):
            for dist in pip:
                if _pep503(dist["name"]) == _pep503(text.strip()):
                    hits.add(f"{dist['name']} {dist['version']} (pip, matches {text!r})")
    bad = sorted(hits)
    message = (
        "Blocked packages: " + ", ".join(bad) if bad else "No package matches blocked_packages"
    )
    return _result("blocked_packages", bad, message)


def check_pip_direct(pip_specs: list[str]) -> dict[str, Any]:
    bad = sorted(s for s in pip_specs if DIRECT_RE.search(s.strip()))
    message = (
        "pip requirements that are direct URLs or local paths: " + ", ".join(bad)
        if bad
        else "No pip requirement is a direct URL or a local path"
    )
    return _result("pip_direct", bad, message)


def run_checks(
    lock: dict[str, Any],
    records: list[Any],
    pip_specs: list[str],
    allowed_channels: list[str],
    blocked_packages: list[str],
    enforce: bool,
) -> list[dict[str, Any]]:
    checks = [
        check_channels(lock, allowed_channels),
        check_blocked(records, lock.get("pip", []), blocked_packages),
        check_pip_direct(pip_specs),
    ]
    for check in checks:
        check["blocking"] = bool(enforce and not check["ok"])
    return checks


def _result(name: str, items: list[str], message: str) -> dict[str, Any]:
    return {"check": name, "ok": not items, "items": items, "message": message}
