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
MAX_YML_BYTES = 256 * 1024
MAX_YML_DEPTH = 20
SCOPES = ("local", "shared")

SPEC_FIELDS = ("display_name", "description", "python", "conda", "pip", "channels", "base")


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


# -- environment.yml -----------------------------------------------------------------------------


def to_environment_yml(spec: EnvSpec, default_channels: list[str]) -> str:
    """The spec as an environment.yml. Values go through the YAML dumper (quoted as needed);
    free text goes into comments, one ``# `` per line whatever line break it uses, so no stored
    string can add keys to the document."""
    import yaml

    deps: list[Any] = []
    if spec.python:
        deps.append(_yml_python(spec.python))
    deps.extend(spec.conda)
    if spec.pip:
        if not any(package_name(c, "conda") == "pip" for c in spec.conda):
            deps.append("pip")
        deps.append({"pip": list(spec.pip)})
    doc: dict[str, Any] = {
        "name": spec.name,
        "channels": list(spec.channels or default_channels),
        "dependencies": deps,
    }
    header = _comment(spec.display_name) if spec.display_name != spec.name else ""
    if spec.description:
        header += _comment(spec.description)
    if spec.base:
        header += _comment(f"built on environment {spec.base} (its packages are not listed here)")
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _comment(text: str) -> str:
    # str.splitlines() splits on every line break YAML knows (and more).
    return "".join(f"# {line}\n" for line in str(text).splitlines() or [""])


def _yml_python(python: str) -> str:
    if BARE_VERSION_RE.fullmatch(python):
        return f"python={python}"
    return f"python{python}" if python[0] in "<>=!~" else f"python {python}"


def load_yaml_document(text: Any, field_name: str = "environment_yml") -> Any:
    """Parse a small YAML document safely: bounded in size and nesting, aliases refused.

    An alias (``*a``) lets a few hundred bytes expand into gigabytes (the "billion laughs");
    environment.yml files never need one, so the event stream is checked before anything is
    built from it.
    """
    import yaml

    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"'{field_name}' must be a non-empty string", field=field_name)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YML_BYTES:
        raise ValidationError(
            f"'{field_name}' is larger than {MAX_YML_BYTES // 1024} KiB", field=field_name
        )
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValidationError(
                    f"'{field_name}' uses YAML anchors or aliases (& or *), which are not "
                    "supported",
                    field=field_name,
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YML_DEPTH:
                    raise ValidationError(
                        f"'{field_name}' is nested more than {MAX_YML_DEPTH} levels deep",
                        field=field_name,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise ValidationError(
            f"'{field_name}' is not valid YAML: {err}".split("\n")[0][:300], field=field_name
        ) from None
    if len(docs) != 1:
        raise ValidationError(f"'{field_name}' must hold one YAML document", field=field_name)
    return docs[0]


def from_environment_yml(
    text: Any, allow_direct_urls: bool = False
) -> tuple[str | None, dict[str, Any]]:
    """Parse an environment.yml into (name, validated spec fields). ``pip:`` is understood.

    Each key is type-checked and reported under the spec field it feeds (``channels``, ``pip``,
    ``conda``, ``name``), like the same mistake in a create body.
    """
    doc = load_yaml_document(text)
    if not isinstance(doc, dict):
        raise ValidationError("'environment_yml' must be a mapping", field="environment_yml")
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise ValidationError("'name' in the environment.yml must be a string", field="name")
    deps = doc.get("dependencies")
    if deps is None:
        deps = []
    if not isinstance(deps, list):
        raise ValidationError("'dependencies' must be a list", field="conda")
    python = None
    conda: list[str] = []
    pip: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            entries = dep["pip"] if dep["pip"] is not None else []
            if not isinstance(entries, list) or not all(isinstance(p, str) for p in entries):
                raise ValidationError("'pip' must be a list of strings", field="pip")
            pip.extend(entries)
        elif isinstance(dep, str):
            dep = dep.strip()
            if CONDA_NAME_END_RE.split(dep, maxsplit=1)[0] == "python":
                rest = dep[len("python") :].strip()
                python = (
                    rest.lstrip("=").strip() if rest.startswith("=") and "==" not in rest else rest
                )
                python = python or None
            else:
                conda.append(dep)
        else:
            raise ValidationError(
                f"Unsupported dependency entry {shown(dep)}: use a package spec string or a "
                "'pip:' list",
                field="conda",
                item=str(dep)[:MAX_ITEM_LENGTH],
            )
    if pip:  # conda needs its pip package to run the pip: section; our pip layer does not
        conda = [c for c in conda if c != "pip"]
    body: dict[str, Any] = {"conda": conda, "pip": pip}
    if python:
        body["python"] = python.removesuffix(".*")
    channels = doc.get("channels")
    if channels is not None:
        body["channels"] = (
            [c for c in channels if c != "defaults"] if isinstance(channels, list) else channels
        )
    return name, validate_fields(body, SPEC_FIELDS, allow_direct_urls)
