"""requirements.txt in: the pip requirements of a file people already have, checked line by line.

What pip reads and we keep: one PEP 508 requirement per line (environment markers and extras
included), comments (``#`` at the start of a line or after whitespace), blank lines and
``\\`` line continuations. What we refuse, naming the line: includes (``-r``/``-c``: the server
sees only the uploaded text, never the files it names) and every option (``--index-url``,
``-e``, ``--find-links``, ``--hash`` ...), because the server's index policy
(``c.EnvManager.pip_index_url`` and friends) decides where packages come from. Each requirement
then goes through the same check as the ``pip`` field of a spec
(:func:`.spec.validate_pip_specs`).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ValidationError
from .spec import MAX_PACKAGES, shown, validate_pip_specs

FIELD = "requirements_txt"
MAX_REQUIREMENTS_BYTES = 256 * 1024
_COMMENT_RE = re.compile(r"(^|\s+)#.*")
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")


def parse_requirements(
    text: Any, allow_direct_urls: bool = False, field_name: str = FIELD
) -> list[str]:
    """The requirements of a requirements.txt, each validated; :class:`ValidationError` names
    the line (``line N``) of anything refused."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"'{field_name}' must be a non-empty string", field=field_name)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_REQUIREMENTS_BYTES:
        raise ValidationError(
            f"'{field_name}' is larger than {MAX_REQUIREMENTS_BYTES // 1024} KiB",
            field=field_name,
        )
    out: list[str] = []
    for number, line in _logical_lines(text):
        line = _COMMENT_RE.sub("", line).strip()
        if not line:
            continue
        if line.startswith("-"):
            option = re.split(r"[\s=]", line, maxsplit=1)[0]
            if option in _INCLUDES:
                why = (
                    f"includes ({option}) are not supported: only the uploaded text is read; "
                    "paste the included file's requirements instead"
                )
            else:
                why = (
                    f"the option {option} is not allowed: the server's pip settings decide "
                    "where packages come from"
                )
            raise ValidationError(
                f"Line {number} of the requirements file ({shown(line)}): {why}",
                field=field_name,
                item=f"line {number}",
            )
        if re.search(r"\s--?[A-Za-z]", line):  # per-requirement options: --hash=..., etc.
            raise ValidationError(
                f"Line {number} of the requirements file ({shown(line)}): options after a "
                "requirement (such as --hash) are not allowed",
                field=field_name,
                item=f"line {number}",
            )
        try:
            validate_pip_specs([line], allow_direct_urls)
        except ValidationError as err:
            raise ValidationError(
                f"Line {number} of the requirements file: {err.message}",
                field=field_name,
                item=f"line {number}",
            ) from None
        out.append(line)
        if len(out) > MAX_PACKAGES:
            raise ValidationError(
                f"'{field_name}' has more than {MAX_PACKAGES} requirements", field=field_name
            )
    if not out:
        raise ValidationError(
            f"'{field_name}' lists no requirements (only comments or blank lines)",
            field=field_name,
        )
    return out


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, text) of each line, ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT_RE.search(raw):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        out.append((start, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        out.append((start, " ".join(part.strip() for part in pending)))
    return out


def looks_like_requirements(filename: str, text: str) -> bool:
    """Whether a file to import is a requirements.txt rather than an environment.yml: by its
    name (``*.txt``, ``requirements*``), else by its content (no YAML mapping)."""
    lower = filename.rsplit("/", 1)[-1].lower()
    if lower.endswith((".yml", ".yaml")):
        return False
    if lower.endswith((".txt", ".in")) or lower.startswith("requirements"):
        return True
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return True
    return not isinstance(doc, dict)
