"""Relays what other processes did to publish requests (other users' servers, the CLI, the magics).

Every action on a request, in whichever process, writes one file to the audit directory
(``<requests_root>/.audit``, see :mod:`.audit`), so the audit directory is the team's event log:
a round stats it, reads only the files it has not seen, and turns each into the ``request`` event
the acting process emitted in its own server. Events this process wrote itself were emitted when
they happened and are skipped. A file is created before its content is written (``O_EXCL``): one
that cannot be read yet is read again at the next round.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import audit
from .errors import EnvManagerError


class RequestWatch:
    def __init__(self, service):
        self.svc = service
        self._mtime: int | None = None
        self._seen: set[str] | None = None  # None until primed: the first round emits nothing
        self._unread: set[str] = set()

    def _directory(self) -> Path | None:
        if self.svc.shared is None:
            return None
        try:
            return self.svc.publishing.inbox() / ".audit"
        except (OSError, EnvManagerError):
            return None

    def _names(self, directory: Path) -> set[str] | None:
        try:
            return {
                e.name
                for e in os.scandir(directory)
                if e.name.endswith(".json") and not e.name.startswith(".")
            }
        except OSError:
            return None

    def prime(self) -> None:
        """Remember the events already there (history, not news)."""
        directory = self._directory()
        if directory is None:
            self._seen = set()
            return
        self._mtime = _mtime(directory)
        self._seen = self._names(directory) or set()

    def changes(self) -> list[tuple[str, dict[str, Any]]]:
        """The ``request`` events written by other processes since the last round."""
        directory = self._directory()
        if directory is None:
            return []
        if self._seen is None:
            self.prime()
            return []
        mtime = _mtime(directory)
        if mtime == self._mtime and not self._unread:
            return []
        names = self._names(directory)
        if names is None:
            return []
        self._mtime = mtime
        events = []
        for name in sorted(names - self._seen):
            entry = _read(directory / name)
            if entry is _PARTIAL:
                self._unread.add(name)
                continue
            self._unread.discard(name)
            self._seen.add(name)
            if entry is None:
                continue
            if name.removesuffix(".json") in self.svc.publishing.emitted:
                continue
            try:
                events.append(("request", request_event(entry)))
            except ValueError:
                continue  # not an event of ours (a stray file): nothing to relay
        if events:
            self.svc.publishing.forget()
        return events


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


_PARTIAL: dict[str, Any] = {}


def _read(path: Path) -> dict[str, Any] | None:
    """The entry; ``_PARTIAL`` while it is being written; None if it can never be read."""
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError:
        return _PARTIAL
    except OSError:
        return None
    return data if isinstance(data, dict) else None


# The request event's fields, and the audit entry's fields they come from ("draft" is optional).
REQUEST_EVENT_FIELDS = {
    "action": "event",
    "id": "request",
    "name": "name",
    "requester": "requester",
    "draft": "draft",
}


def request_event(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``request`` event of an audit entry (``event``, ``request``, ``name``, ``requester``,
    and ``draft``, the name of the draft it came from, where known)."""
    event = {k: entry[f] for k, f in REQUEST_EVENT_FIELDS.items() if f in entry}
    if (
        event.get("action") not in audit.EVENTS
        or not REQUEST_EVENT_FIELDS.keys() - {"draft"} <= event.keys()
        or not all(isinstance(v, str) for v in event.values())
    ):
        raise ValueError(f"not a request event: {entry!r:.200}")
    return event
