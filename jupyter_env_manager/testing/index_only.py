"""Grow a test channel to thousands of package names cheaply: index-only records.

Writing a real archive per package costs milliseconds each; a search only reads repodata. So
:func:`add_index_only_names` adds ``n`` names (each with a few versions) straight into a channel's
``noarch/repodata.json``, without archives: they can be found by search and solved for, never
installed. Re-indexing the channel (``build_channel`` again, ``rattler.index.index_fs`` with
``force=True``) drops them; call this after.

Names are made from syllables with a fixed seed, with conda-forge's common prefixes (``r-``,
``py``, ``lib``) in about the proportions they have there, so that a prefix search matches a
realistic share of the channel.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

_SYLLABLES = (
    "al be ca da el fa ga ha in jo ka lo ma no op pa qu ra sa ta um va wo xe yo ze "
    "ar bi co du en fi go hu is ju ke li mo nu or pe ri so tu un vi "
).split()
_WORDS = "core io utils tools data plot http json yaml test cli api sdk db ml".split()
_PREFIXES = (("r-", 0.15), ("py", 0.08), ("lib", 0.07))


def synthetic_names(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct, deterministic, plausible package names."""
    rng = random.Random(seed)
    names: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.4:
            stem += "-" + rng.choice(_WORDS)
        draw = rng.random()
        for prefix, share in _PREFIXES:
            if draw < share:
                stem = prefix + stem
                break
            draw -= share
        if stem not in names:
            names.add(stem)
            out.append(stem)
    return out


def add_index_only_names(
    channel_dir: str | Path, n: int, versions: int = 3, seed: int = 0
) -> list[str]:
    """Add ``n`` index-only package names of ``versions`` versions each to ``noarch``.

    Returns the names added. The channel must have been indexed (``noarch/repodata.json``).
    """
    repodata_path = Path(channel_dir) / "noarch" / "repodata.json"
    repodata = json.loads(repodata_path.read_text())
    packages = repodata.setdefault("packages", {})
    names = synthetic_names(n, seed)
    for name in names:
        for minor in range(versions):
            version = f"1.{minor}.0"
            filename = f"{name}-{version}-0.tar.bz2"
            digest = hashlib.sha256(filename.encode()).hexdigest()
            packages[filename] = {
                "name": name,
                "version": version,
                "build": "0",
                "build_number": 0,
                "depends": [],
                "license": "BSD-3-Clause",
                "md5": digest[:32],
                "noarch": "generic",
                "sha256": digest,
                "size": 1000 + minor,
                "subdir": "noarch",
                "timestamp": 1_700_000_000_000,
            }
    repodata_path.write_text(json.dumps(repodata, separators=(",", ":")))
    # Compressed copies would shadow the new JSON: the gateway prefers them.
    for stale in ("repodata.json.zst", "repodata.json.bz2", "repodata_shards.msgpack.zst"):
        (repodata_path.parent / stale).unlink(missing_ok=True)
    return names
