"""The body of ``GET environments`` as sent: a :class:`Response` (the joined JSON, its ETag and
its gzip, made once per change by :mod:`.listing`), and the *compact* form of an environment's
fragment.

The compact list (``?view=compact``, what the panel asks for) is the full one with each action
``{"allowed": true, "reason": null}`` sent as ``null`` and each ``{"allowed": false, "reason":
"..."}`` as the index of its reason in the response's ``"reasons"``. The same sentences recur
in every environment ("Build it first...", "No build is running"): they were two thirds of the
full list's bytes. A compact fragment is made from the full fragment's text (no parse), and
the reasons are interned in a :class:`Reasons` kept for the server's life and only ever added
to, so a compact fragment made once stays valid in every later response. An action of another
shape is sent as it is.
"""

from __future__ import annotations

import gzip
import hashlib
import operator
import re
import threading

from .errors import ValidationError
from .spec import MAX_ITEM_LENGTH, shown

VIEWS = ("full", "compact")  # GET environments?view=
SEPARATORS = (",", ":")  # the fragments' json.dumps separators (what ACTION_RE reads)
ACTIONS_KEY = '"actions":{'
ETAG_RE = re.compile(r'(?:W/)?"[^"]*"')
# One action of a full fragment: its name, whether allowed, and its reason's JSON text.
ACTION_RE = re.compile(r'"(\w+)":\{"allowed":(true|false),"reason":(null|"(?:[^"\\]|\\.)*")\}')


def validate_view(view: str) -> str:
    """``GET environments?view=``: ``full`` (the default) or ``compact``."""
    if view not in VIEWS:
        raise ValidationError(
            f"Invalid view {shown(view)}: use 'full' or 'compact'",
            field="view",
            item=view[:MAX_ITEM_LENGTH],
        )
    return view


class Reasons:
    """The compact lists' reasons (each as its JSON text), numbered in the order first seen."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, text: str) -> int:
        """The number of a reason's JSON text (a new one is added)."""
        number = self._index.get(text)
        if number is None:
            number = self._index[text] = len(self._texts)
            self._texts.append(text)
        return number

    def json(self) -> str:
        """Every reason so far, as a JSON array (a response names some of them)."""
        return "[" + ",".join(self._texts) + "]"

    def texts(self) -> list[str]:
        """Their JSON texts, in number order (kept with the listing cache)."""
        return list(self._texts)

    @classmethod
    def of(cls, texts: list[str]) -> Reasons:
        """Reasons numbered as ``texts`` (a previous process's, whose compact fragments name
        them by these numbers)."""
        if not isinstance(texts, list):
            raise ValueError("not a list of reasons")
        reasons = cls()
        for text in texts:
            if not isinstance(text, str) or text in reasons._index:
                raise ValueError("not a list of distinct reasons")
            reasons.index(text)
        return reasons


def compact_fragment(fragment: str, reasons: Reasons) -> str:
    """A full fragment's compact form: its actions as null (allowed) or a reason's number."""
    start = fragment.find(ACTIONS_KEY)
    if start < 0:
        return fragment
    pos = start + len(ACTIONS_KEY)
    items: list[str] = []
    while (m := ACTION_RE.search(fragment, pos)) is not None and m.start() == pos:
        name, allowed, reason = m.groups()
        if allowed == "true" and reason == "null":
            items.append(f'"{name}":null')
        elif allowed == "false" and reason != "null":
            items.append(f'"{name}":{reasons.index(reason)}')
        else:
            items.append(m.group(0))
        pos = m.end() + (fragment[m.end()] == ",")
    rest = fragment[pos:]
    separator = "," if items and not rest.startswith("}") else ""
    return fragment[:start] + ACTIONS_KEY + ",".join(items) + separator + rest


class Response:
    """A list as sent: its JSON bytes, their ETag and (made once, on first need) their gzip."""

    def __init__(self, parts: list[str], data: bytes) -> None:
        self.parts = parts  # the fragments it was joined from (kept: compared by identity)
        self.data = data
        # Weak: the gzip and the plain bytes are the same list (RFC 9110, 8.8.1).
        self.etag = f'W/"{hashlib.blake2b(data, digest_size=16).hexdigest()}"'
        self._gzip: bytes | None = None
        self._lock = threading.Lock()

    @property
    def compressed(self) -> bytes | None:
        """The gzip if it was made already (else None: :meth:`gzipped` makes it)."""
        return self._gzip

    def gzipped(self) -> bytes:
        """The gzip of the bytes, made once (concurrent callers wait for the first)."""
        with self._lock:
            if self._gzip is None:
                # Level 3: about twice as fast as 6 on a 6 MB list, about 10% larger.
                self._gzip = gzip.compress(self.data, compresslevel=3, mtime=0)
            return self._gzip

    def made_of(self, parts: list[str]) -> bool:
        """Whether ``parts`` are the very fragments this response was joined from."""
        return len(parts) == len(self.parts) and all(map(operator.is_, parts, self.parts))

    def matches(self, if_none_match: str | None) -> bool:
        """Whether an ``If-None-Match`` header names this response (weak comparison)."""
        if not if_none_match:
            return False
        if if_none_match.strip() == "*":
            return True
        mine = self.etag[2:]
        return any(tag.removeprefix("W/") == mine for tag in ETAG_RE.findall(if_none_match))
