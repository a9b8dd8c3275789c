"""The audit log of publishing: one JSON file per event, never an append (NFS).

Each event (submitted, withdrawn, approved, rejected, published, publish_failed, outdated) is a
new file in ``<requests_root>/.audit/`` created with ``O_EXCL``: two servers never write the same
file, and an event with a fixed key (a publish result) is recorded exactly once however many
processes notice it. The directory is sticky like the inbox (nobody removes another's events);
files are readable by whom the store lets read and writable by nobody but their owner. Each
event names the acting user (``who``, the door's identity) and the Unix account that wrote it
(``account``, from the process).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from .records import now

EVENTS = (
    "submitted",
    "withdrawn",
    "approved",
    "rejected",
    "published",
    "publish_failed",
    "outdated",
)


def account() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover
        return str(os.geteuid())


def record(
    directory: Path, event: str, who: str, mode: int, key: str | None = None, **data: Any
) -> dict[str, Any] | None:
    """Write one event; with ``key``, only if no event of that key exists (None then)."""
    stamp = now()
    entry = {
        "event": event,
        "at": stamp,
        "who": who,
        "account": account(),
        "host": socket.gethostname(),
        **data,
    }
    compact = stamp.replace("-", "").replace(":", "").replace(".", "")[:18]
    name = key or f"{compact}-{event}-{secrets.token_hex(4)}"
    entry["id"] = name
    path = directory / f"{name}.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with open(fd, "w") as f:
        os.fchmod(f.fileno(), mode)
        json.dump(entry, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    return entry


def events(directory: Path, request: str | None = None, limit: int = 1000) -> list[dict]:
    """The events, oldest first (of one request, if given); unreadable files are skipped."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        try:
            with open(entry.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue  # being written (O_EXCL makes it visible before its content)
        if isinstance(data, dict) and (request is None or data.get("request") == request):
            out.append(data)
    out.sort(key=lambda e: str(e.get("at")))
    return out[-limit:]
