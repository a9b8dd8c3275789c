"""Channels as the network sees them: errors that say what to change, offline mode, redaction.

One place for three things every build and search needs:

- :func:`channel_error` turns rattler's error chains (``error sending request for url (...)
  Caused by: ... dns error ...``) into one sentence naming the channel, the cause (the host name
  does not resolve, the connection was refused, timed out, an HTTP status, no cached repodata)
  and the settings to change (``c.EnvManager.channels``, ``c.EnvManager.offline``). The build's
  error carries it, so the log banner, the notification, the CLI and the magics all say the same.
- :func:`make_gateway` is the one place that knows how to make py-rattler 0.28's gateway work
  offline (see its docstring for the workaround).
- :func:`redact` removes credentials from URLs (``user:pass@``, ``/t/<token>/``) in anything we
  write: specs, locks, logs, exports and bundles.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OFFLINE_HINT = (
    "Offline builds read only cached repodata and file:// channels: build once with network, "
    "import a bundle (jupyter envmgr import NAME.tar), or set c.EnvManager.channels to a file:// "
    "channel."
)
SETTINGS_HINT = (
    "Set c.EnvManager.channels (or the environment's channels) to channels this machine can "
    "reach, or c.EnvManager.offline = True to build from cached repodata and file:// channels "
    "only (see `jupyter envmgr demo` for a local channel)."
)

_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"dns error|failed to lookup address|Name or service not known|resolv", re.I),
        "the host name does not resolve (DNS)",
    ),
    (re.compile(r"Connection refused", re.I), "the connection was refused"),
    (re.compile(r"timed out|timeout|deadline", re.I), "the connection timed out"),
    (re.compile(r"no usable repodata cache", re.I), "offline, and no repodata of it is cached"),
    (re.compile(r"certificate|tls|ssl", re.I), "the TLS certificate was not accepted"),
    (re.compile(r"unreachable|No route to host", re.I), "the network is unreachable"),
)
_HTTP_STATUS = re.compile(r"HTTP status (?:client|server) error \((\d{3})([^)]*)\)")
_URL = re.compile(r"(?:url \(|channel ')([a-z][a-z0-9+.-]*://[^)'\s]+)")


@dataclass
class ChannelProblem:
    """Why a channel could not be read: ``channel`` as configured, ``cause`` in words."""

    channel: str
    cause: str

    def message(self, offline: bool = False) -> str:
        hint = OFFLINE_HINT if offline else SETTINGS_HINT
        return f"Channel {self.channel} could not be reached: {self.cause}. {hint}"


def channel_base_url(channel: str) -> str:
    """The base URL rattler reads ``channel`` from (a name resolves against conda-forge's host)."""
    try:
        from rattler import Channel

        return str(Channel(channel).base_url)
    except Exception:
        return channel


def classify(err: BaseException | str, channels: list[str]) -> ChannelProblem | None:
    """The channel and cause of a network failure in ``err``, or None if it is not one."""
    text = str(err)
    status = _HTTP_STATUS.search(text)
    if status:
        cause = f"HTTP {status.group(1)}{status.group(2).rstrip()}"
    else:
        cause = next((words for pattern, words in _CAUSES if pattern.search(text)), "")
    if not cause:
        return None
    urls = _URL.findall(text)
    cache_url = re.search(r"no usable repodata cache for (\S+)", text)
    if cache_url:
        urls.append(cache_url.group(1))
    channel = _which_channel(urls, channels)
    return ChannelProblem(redact(channel), cause)


def _which_channel(urls: list[str], channels: list[str]) -> str:
    for url in urls:
        for channel in channels:
            base = channel_base_url(channel).rstrip("/")
            if url.startswith(base + "/") or url.rstrip("/") == base:
                return channel
    if urls:  # a channel we did not configure (e.g. a record's URL): its directory
        return urls[0].rsplit("/", 2)[0] + "/"
    return ", ".join(channels) or "(none)"


def channel_error(
    err: BaseException | str,
    channels: list[str],
    what: str,
    offline: bool = False,
    lead: bool = True,
) -> str:
    """The message of a failed solve/download/search: ``what: the channel problem`` (only the
    problem with ``lead=False``: a build's phase already says what failed), else ``what: err``.

    The problem comes first and short, so that a notification, which shows 140 characters,
    still names the channel and the cause."""
    problem = classify(err, channels)
    if problem is not None:
        return f"{what}: {problem.message(offline)}" if lead else problem.message(offline)
    reason = " ".join(redact(str(err)).split())
    return f"{what}: {reason}"


# -- offline ---------------------------------------------------------------------------------------


def rattler_client() -> Any:
    """rattler's standard HTTP client, with its authentication middleware.

    py-rattler 0.28 workaround: a ``Gateway`` or ``install()`` given no client sends no
    credentials at all; only ``Client.default_client()`` reads rattler's credential stores
    (the file named by ``RATTLER_AUTH_FILE``, ``~/.rattler/credentials.json``, ``~/.netrc``,
    the keyring). Credentials therefore stay outside specs: the admin puts them there.
    """
    from rattler.networking import Client

    return Client.default_client()


def make_gateway(pkgs_dir: str | Path, offline: bool, client: Any = None) -> Any:
    """A rattler ``Gateway`` caching repodata under the package cache; offline if asked.

    ``client``: a :func:`rattler_client` to share (a build uses one for its solve and its
    install: making one reads the credential stores, ~20 ms); a new one if not given.

    py-rattler 0.28 workaround: ``SourceConfig(cache_action="use-cache-only")`` still sends a
    request for sharded repodata (``repodata_shards.msgpack.zst``) before looking at the cache,
    so offline needs ``cache_action="force-cache-only"`` AND ``sharded_enabled=False``. Then a
    channel with no cached ``repodata.json`` fails with "no usable repodata cache for URL"
    (classified by :func:`classify`); ``file://`` channels are read from disk as always.
    """
    from rattler import Gateway, SourceConfig

    cache = Path(pkgs_dir) / "cache" / "repodata"
    client = client if client is not None else rattler_client()
    if not offline:
        return Gateway(cache_dir=cache, client=client)
    config = SourceConfig(cache_action="force-cache-only", sharded_enabled=False)
    return Gateway(cache_dir=cache, default_config=config, client=client)


def cached_package_dir(pkgs_dir: str | Path, record: Any) -> Path:
    """Where rattler's package cache keeps ``record`` extracted."""
    return Path(pkgs_dir) / f"{record.name.normalized}-{record.version}-{record.build}"


def missing_offline(records: list[Any], pkgs_dir: str | Path) -> list[str]:
    """``name=version=build`` of the records an offline install cannot get: neither extracted
    in the package cache nor an archive on this machine (``file://``)."""
    missing = []
    for record in records:
        url = str(record.url)
        if url.startswith("file://"):
            continue
        if (cached_package_dir(pkgs_dir, record) / "info" / "index.json").is_file():
            continue
        missing.append(f"{record.name.normalized}={record.version}={record.build}")
    return sorted(missing)


# -- credentials -----------------------------------------------------------------------------------

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@", re.I)
_TOKEN_SEGMENT = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^\s'\"]*?)/t/[^/\s'\"]+", re.I)
_QUERY_SECRET = re.compile(r"([?&](?:token|access_token|api_key|apikey|password)=)[^&\s'\"]+", re.I)
REDACTED = "***"


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a secret that :func:`redact` would remove."""
    return redact(url) != url


def restore_credentials(records: list[Any], channels: list[str]) -> None:
    """Put the configured channels' secrets back into a lock's redacted record URLs.

    Locks are written redacted; a revert or copy that must download again takes the secret
    from the channel as configured now (``c.EnvManager.channels``), never from a file we wrote.
    """
    bases = [(redact(b), b) for b in (channel_base_url(c) for c in channels) if has_credentials(b)]
    for record in records:
        url = str(record.url)
        for shown_base, real_base in bases:
            if url.startswith(shown_base):
                record.url = real_base + url[len(shown_base) :]
                break


def redact_prefix_records(prefix: Path) -> int:
    """Redact ``url`` and ``channel`` of the prefix's conda-meta records (rattler writes the
    URL it downloaded from, token included); how many were rewritten."""
    import json

    changed = 0
    for path in (prefix / "conda-meta").glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        fields = {k: redact(v) for k in ("url", "channel") if isinstance(v := data.get(k), str)}
        if any(data[k] != v for k, v in fields.items()):
            data.update(fields)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
            changed += 1
    return changed


def scrub_job_file(path: Path) -> None:
    """Rewrite a build's job.json without secrets once its worker holds the job in memory."""
    import json

    try:
        text = path.read_text()
    except OSError:
        return
    clean = redact(text)
    if clean != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(clean)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
        json.loads(clean)  # still JSON (redaction only replaces inside strings)


def redact(text: str) -> str:
    """``text`` with URL credentials replaced by ``***``: ``user:pass@``, ``/t/<token>/``
    (anaconda.org style token segments) and ``?token=`` style query parameters."""
    text = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    text = _TOKEN_SEGMENT.sub(rf"\g<pre>/t/{REDACTED}", text)
    return _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
