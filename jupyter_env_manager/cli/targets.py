"""What a command acts on: the scope and the environment its arguments name, and the files it
reads or writes. Standard library only at the top (see :mod:`.commands`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def scope_of(args) -> str:
    return "shared" if getattr(args, "shared", False) else "local"


def read_text(path: str) -> str:
    from ..core.errors import ValidationError

    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ValidationError(f"Cannot read {path}: {reason}", field="file", item=path) from None


def import_source(path: str) -> dict[str, str]:
    """The import body's source: ``environment_yml``, or ``requirements_txt`` for a
    requirements file (by its name, else its content)."""
    from ..core.requirements import looks_like_requirements

    text = read_text(path)
    key = "requirements_txt" if looks_like_requirements(path, text) else "environment_yml"
    return {key: text}


def write_text(path: str, text: str) -> None:
    from ..core.errors import ValidationError

    try:
        Path(path).write_text(text)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ValidationError(f"Cannot write {path}: {reason}", field="output", item=path) from None


def env_of_prefix(service, prefix: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(scope, name) of the store environment at ``prefix`` (its usual path or one of its
    version directories), or None."""
    for store in service.stores():
        name = store.name_at(prefix)
        if name is not None:
            return store.scope, name
    return None


def target_env(service, args) -> tuple[str, str]:
    """The environment ``install``/``uninstall`` change: --env, else the one at --prefix."""
    from ..core.errors import ValidationError

    if args.env:
        return scope_of(args), args.env
    prefix = args.prefix or os.environ.get("CONDA_PREFIX") or sys.prefix
    found = env_of_prefix(service, prefix)
    if found is None:
        raise ValidationError(
            f"{prefix} is not an environment of the local or shared store: name one with --env",
            field="env",
            item=str(prefix),
        )
    return found
