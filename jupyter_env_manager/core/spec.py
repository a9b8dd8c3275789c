"""Environment specs: validation of names and package specs, environment.yml in and out.

Validation is strict and names the bad field and item, because a spec's strings end up in a
solver request and a uv command line: nothing that starts with ``-`` or is not a well-formed
match spec / PEP 508 requirement gets through. Every pattern is matched whole (``fullmatch``,
ASCII classes only): ``$`` would let a trailing newline through and ``\\d`` any Unicode digit.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .diagnose import has_credentials, redact
from .errors import ValidationError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
RESERVED_NAMES = {"base", "root"}
# Longest prefix conda packages can be relocated into (the padded build placeholder).
MAX_PREFIX_LENGTH = 255
BARE_VERSION_RE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,2}")
CHANNEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*")
CHANNEL_URL_RE = re.compile(r"(https?|file)://[\x21-\x7e]+")
DIRECT_URL_RE = re.compile(r"(https|git\+https)://[\x21-\x7e]+")
PIP_NAME_RE = re.compile(r"[-_.]+")
CONDA_NAME_END_RE = re.compile(r"[\s=<>!~\[]")
MAX_PACKAGES = 500
# Longest package spec, channel or requirement: echoed in messages, so bounded.
MAX_ITEM_LENGTH = 500
# environment.yml documents: size and nesting are bounded, aliases refused (no "YAML bomb").
SCOPES = ("local", "shared")

SPEC_FIELDS = (
    "display_name",
    "description",
    "python",
    "conda",
    "pip",
    "channels",
    "base",
    "variables",
)
# environment.yml ``variables:``: written to the prefix's etc/conda/env_vars.d at build.
VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_VARIABLES = 100
MAX_VARIABLE_VALUE = 4096
# Set by activation and the kernelspec themselves: a spec may not override them.
RESERVED_VARIABLES = re.compile(r"PATH|PYTHONPATH|CONDA_.*|JUPYTER_ENV_MANAGER_.*")


@dataclass
class EnvSpec:
    """What an environment should contain; each build snapshots it."""

    name: str
    display_name: str = ""
    description: str = ""
    python: str | None = None
    conda: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    base: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    # Private wheels (:mod:`.wheels`): normalized pip name -> the stored wheel's file name.
    wheels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def package_specs(self) -> dict[str, Any]:
        """The part of the spec shown as ``spec`` in the REST API."""
        return {
            "python": self.python,
            "conda": list(self.conda),
            "pip": list(self.pip),
            "channels": list(self.channels),
            "base": self.base,
            "variables": dict(self.variables),
            "wheels": dict(self.wheels),
        }


def validate_name(name: Any, field_name: str = "name") -> str:
    if name is None or name == "":
        raise ValidationError(f"'{field_name}' is required", field=field_name)
    if not isinstance(name, str):
        raise ValidationError(f"'{field_name}' must be a string", field=field_name)
    if not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"Invalid environment name {shown(name)}: use 1-32 lowercase letters, digits, '-' "
            "or '_', starting with a letter or digit",
            field=field_name,
            item=name[:MAX_ITEM_LENGTH],
        )
    if name in RESERVED_NAMES:
        raise ValidationError(
            f"Invalid environment name {name!r}: it is reserved", field=field_name, item=name
        )
    return name


def validate_scope(scope: Any, field_name: str = "scope") -> str:
    if not isinstance(scope, str) or scope not in SCOPES:
        where = "" if field_name == "scope" else f" in '{field_name}'"
        raise ValidationError(
            f"Invalid scope {shown(scope)}{where}: use 'local' or 'shared'",
            field=field_name,
            item=str(scope)[:MAX_ITEM_LENGTH],
        )
    return scope


def shown(value: Any, limit: int = 80) -> str:
    """``repr`` of a value for a message, cut short: messages echo user input, bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Line and paragraph separators beyond \n that YAML, JSON readers or terminals may break on.
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def validate_text(value: Any, field_name: str, limit: int, multiline: bool = False) -> str:
    """A free-text field: a string (or null), bounded, without control characters or lone
    surrogates; one line unless ``multiline``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"'{field_name}' must be a string", field=field_name)
    if len(value) > limit:
        raise ValidationError(f"'{field_name}' is longer than {limit} characters", field=field_name)
    allowed = "\n\t" if multiline else "\t"
    if any(
        (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000 or ch in _LINE_BREAKS)
        and ch not in allowed
        for ch in value
    ):
        what = "control characters" if multiline else "line breaks or control characters"
        raise ValidationError(f"'{field_name}' contains {what}", field=field_name)
    return value.strip()


def _string_list(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # A convenience for clients posting one package per line.
        value = [line for line in value.splitlines()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"'{field_name}' must be a list of strings", field=field_name)
    if len(value) > MAX_PACKAGES:
        raise ValidationError(
            f"'{field_name}' has more than {MAX_PACKAGES} entries", field=field_name
        )
    items = [v.strip() for v in value if v.strip()]
    for item in items:
        if len(item) > MAX_ITEM_LENGTH:
            raise ValidationError(
                f"Invalid entry {shown(item)} in '{field_name}': longer than "
                f"{MAX_ITEM_LENGTH} characters",
                field=field_name,
                item=item[:MAX_ITEM_LENGTH],
            )
        if not item.isascii() or not item.isprintable():
            raise ValidationError(
                f"Invalid entry {shown(item)} in '{field_name}': use printable ASCII characters",
                field=field_name,
                item=item,
            )
        if item.startswith("-"):
            raise ValidationError(
                f"Invalid entry {shown(item)} in '{field_name}': options are not allowed here",
                field=field_name,
                item=item,
            )
    return items


def validate_conda_specs(specs: Any, field_name: str = "conda") -> list[str]:
    from rattler import MatchSpec

    items = _string_list(specs, field_name)
    for item in items:
        try:
            match = MatchSpec(item, strict=True)
        except Exception as err:  # rattler raises its own exception types
            match = _conda_form(item)
            if match is None:
                raise ValidationError(
                    f"Invalid conda package spec {shown(item)}: {err}".split("\n")[0][:300],
                    field=field_name,
                    item=item,
                ) from None
        if match.name is None:
            raise ValidationError(
                f"Invalid conda package spec {shown(item)}: a package name is required",
                field=field_name,
                item=item,
            )
    return items


# conda's ``name=version=build`` (``numpy=1.26=py311*``), which rattler's strict parser refuses
# and its lenient one reads as conda does (``numpy ==1.26 py311*``).
CONDA_EQUALS_FORM_RE = re.compile(r"[A-Za-z0-9_.:/-]+=[^=\s\[\]]+=[A-Za-z0-9_.*]+")


def _conda_form(item: str) -> Any:
    """The match spec of a conda form rattler's strict parser refuses but conda accepts, or
    None. Only ``name=version=build`` is such a form; its lenient reading must itself be a
    strict spec (what the solver is given, see :func:`solver_spec`)."""
    from rattler import MatchSpec

    if not CONDA_EQUALS_FORM_RE.fullmatch(item):
        return None
    try:
        match = MatchSpec(item)
        MatchSpec(str(match), strict=True)
    except Exception:
        return None
    return match


def solver_spec(item: str) -> str:
    """A validated conda spec as the solver (which parses strictly) accepts it: the spec
    itself, or the strict form of conda's ``name=version=build``."""
    match = _conda_form(item)
    return str(match) if match is not None else item


def validate_variables(value: Any) -> dict[str, str]:
    """environment.yml ``variables:``: names as the shell's, values one-line text."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("'variables' must be a mapping of names to values", field="variables")
    if len(value) > MAX_VARIABLES:
        raise ValidationError(
            f"'variables' has more than {MAX_VARIABLES} entries", field="variables"
        )
    out: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not VARIABLE_NAME_RE.fullmatch(key):
            raise ValidationError(
                f"Invalid variable name {shown(key)} in 'variables': use letters, digits and "
                "'_', not starting with a digit",
                field="variables",
                item=str(key)[:MAX_ITEM_LENGTH],
            )
        if RESERVED_VARIABLES.fullmatch(key):
            raise ValidationError(
                f"Variable {key!r} in 'variables' is set by activation itself",
                field="variables",
                item=key,
            )
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValidationError(
                f"Variable {key!r} in 'variables' must have a string or number value",
                field="variables",
                item=key,
            )
        text = str(raw)
        if len(text) > MAX_VARIABLE_VALUE or "\0" in text or not text.isprintable():
            raise ValidationError(
                f"Variable {key!r} in 'variables': the value must be one line of printable "
                f"text, at most {MAX_VARIABLE_VALUE} characters",
                field="variables",
                item=key,
            )
        out[key] = text
    return out


def validate_pip_specs(specs: Any, allow_direct_urls: bool = False) -> list[str]:
    """PEP 508 requirements. A direct reference (``name @ URL``) bypasses the configured index
    policy (``pip_no_index``, ``pip_index_url``), so it is refused unless the server allows it
    (``c.EnvManager.pip_allow_direct_urls``); even then only https:// and git+https://."""
    from packaging.requirements import InvalidRequirement, Requirement

    items = _string_list(specs, "pip")
    for item in items:
        try:
            req = Requirement(item)
        except InvalidRequirement as err:
            raise ValidationError(
                f"Invalid pip requirement {shown(item)}: {err}".split("\n")[0][:300],
                field="pip",
                item=item,
            ) from None
        if req.url is None:
            continue
        if not allow_direct_urls:
            raise ValidationError(
                f"Invalid pip requirement {shown(item)}: direct URL references are not allowed "
                "on this server (c.EnvManager.pip_allow_direct_urls); name a package from the "
                "configured index or wheel directories",
                field="pip",
                item=item,
            )
        if not DIRECT_URL_RE.fullmatch(req.url):
            raise ValidationError(
                f"Invalid pip requirement {shown(item)}: "
                "only https:// and git+https:// URLs are allowed",
                field="pip",
                item=item,
            )
    return items


def validate_channels(channels: Any) -> list[str]:
    items = _string_list(channels, "channels")
    for item in items:
        if not (CHANNEL_NAME_RE.fullmatch(item) or CHANNEL_URL_RE.fullmatch(item)):
            raise ValidationError(
                f"Invalid channel {shown(item)}: "
                "use a channel name or an http(s):// or file:// URL",
                field="channels",
                item=item,
            )
        if has_credentials(item):
            raise ValidationError(
                f"Channel {redact(item)} carries credentials: a spec never holds them (specs, "
                "locks and exports are shared). Give the plain URL and put the credentials in "
                "rattler's auth file (RATTLER_AUTH_FILE) or ~/.netrc",
                field="channels",
                item=redact(item),
            )
    return items


def validate_python(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValidationError("'python' must be a string such as \"3.11\"", field="python")
    value = value.strip()
    if len(value) > 100 or not value.isascii():
        raise ValidationError(
            f'Invalid python version {shown(value)}: use a version such as "3.11"',
            field="python",
            item=value[:MAX_ITEM_LENGTH],
        )
    spec = python_match_spec(value)
    validate_conda_specs([spec], "python")
    return value


def python_match_spec(python: str) -> str:
    """``"3.11"`` means any 3.11.x, as ``python=3.11`` does for conda."""
    if BARE_VERSION_RE.fullmatch(python) and python.count(".") < 2:
        return f"python {python}.*"
    if BARE_VERSION_RE.fullmatch(python):
        return f"python =={python}"
    return f"python {python}"


def validate_base(value: Any) -> str | None:
    """``base`` names an environment: ``name`` (same store) or ``local/name`` / ``shared/name``."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValidationError("'base' must be an environment name", field="base")
    scope, _, name = value.rpartition("/")
    if scope:
        try:
            validate_scope(scope)
        except ValidationError:
            raise ValidationError(
                f"Invalid base environment {shown(value)}: use NAME, local/NAME or shared/NAME",
                field="base",
                item=value[:MAX_ITEM_LENGTH],
            ) from None
    validate_name(name, "base")
    return value


def check_known(body: Any, allowed: tuple[str, ...] | set[str]) -> dict[str, Any]:
    """``body`` must be a JSON object whose keys are all in ``allowed``."""
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise ValidationError(f"Unknown field {shown(key)}", field=str(key)[:MAX_ITEM_LENGTH])
    return body


def validate_fields(
    body: dict[str, Any], allowed: tuple[str, ...], allow_direct_urls: bool = False
) -> dict[str, Any]:
    """Validate the spec fields present in ``body``; unknown keys are errors."""
    check_known(body, allowed)
    out: dict[str, Any] = {}
    if "display_name" in body:
        out["display_name"] = validate_text(body["display_name"], "display_name", 128)
    if "description" in body:
        out["description"] = validate_text(body["description"], "description", 2000, multiline=True)
    if "python" in body:
        out["python"] = validate_python(body["python"])
    if "conda" in body:
        out["conda"] = validate_conda_specs(body["conda"])
    if "pip" in body:
        out["pip"] = validate_pip_specs(body["pip"], allow_direct_urls)
    if "channels" in body:
        out["channels"] = validate_channels(body["channels"])
    if "base" in body:
        out["base"] = validate_base(body["base"])
    if "variables" in body:
        out["variables"] = validate_variables(body["variables"])
    for key in ("conda", "pip"):
        names = [package_name(item, key) for item in out.get(key, [])]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationError(
                f"Package {duplicates[0]!r} is listed more than once in '{key}'",
                field=key,
                item=duplicates[0],
            )
    if out.get("python") and out.get("base"):
        raise ValidationError(
            "Give either 'python' or 'base': a base environment brings its own python",
            field="python",
        )
    if any(package_name(c, "conda") == "python" for c in out.get("conda", [])):
        raise ValidationError(
            "Set the python version with the 'python' field, not in 'conda'",
            field="conda",
            item="python",
        )
    return out


def package_name(spec: str, kind: str) -> str:
    """The normalized package name of a conda match spec or a pip requirement (PEP 503);
    '' if unparsable (validation reports those with its own message)."""
    try:
        if kind == "pip":
            from packaging.requirements import Requirement

            return PIP_NAME_RE.sub("-", Requirement(spec).name).lower()
        from rattler import MatchSpec

        match = MatchSpec(spec)
        return match.name.normalized if match.name else ""
    except Exception:
        return ""


def with_packages(current: list[str], new: list[str], kind: str) -> list[str]:
    """``current`` with ``new`` added; a package already listed is replaced in place."""
    out = list(current)
    for spec in new:
        name = package_name(spec, kind)
        for i, old in enumerate(out):
            if name and package_name(old, kind) == name:
                out[i] = spec
                break
        else:
            out.append(spec)
    return out


def without_packages(current: list[str], names: list[str], kind: str, where: str) -> list[str]:
    """``current`` without the packages ``names``; each must be listed."""
    out = list(current)
    for spec in names:
        name = package_name(spec, kind) or spec
        kept = [old for old in out if package_name(old, kind) != name]
        if len(kept) == len(out):
            raise ValidationError(
                f"Package {name!r} is not in the {kind} packages of {where}",
                field=kind,
                item=name,
            )
        out = kept
    return out


def make_spec(name: str, fields: dict[str, Any]) -> EnvSpec:
    spec = EnvSpec(name=validate_name(name))
    for key, value in fields.items():
        setattr(spec, key, value)
    if not spec.display_name:
        spec.display_name = name
    return spec
