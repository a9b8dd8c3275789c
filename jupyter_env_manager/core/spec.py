"""Environment specs: validation of names and package specs, environment.yml in and out.

Validation is strict and names the bad field and item, because a spec's strings end up in a
solver request and a uv command line: nothing that starts with ``-`` or is not a well-formed
match spec / PEP 508 requirement gets through.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ValidationError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
RESERVED_NAMES = {"base", "root"}
# Longest prefix conda packages can be relocated into (the padded build placeholder).
MAX_PREFIX_LENGTH = 255
BARE_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")
CHANNEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$")
CHANNEL_URL_RE = re.compile(r"^(https?|file)://[^\s]+$")
MAX_PACKAGES = 500
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
    if not isinstance(name, str) or not name:
        raise ValidationError(f"'{field_name}' is required", field=field_name)
    if not NAME_RE.match(name):
        raise ValidationError(
            f"Invalid environment name {name!r}: use 1-32 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit",
            field=field_name,
            item=name,
        )
    if name in RESERVED_NAMES:
        raise ValidationError(
            f"Invalid environment name {name!r}: it is reserved", field=field_name, item=name
        )
    return name


def validate_scope(scope: Any) -> str:
    if scope not in SCOPES:
        raise ValidationError(
            f"Invalid scope {scope!r}: use 'local' or 'shared'", field="scope", item=str(scope)
        )
    return scope


def _text(value: Any, field_name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"'{field_name}' must be a string", field=field_name)
    if len(value) > limit:
        raise ValidationError(f"'{field_name}' is longer than {limit} characters", field=field_name)
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise ValidationError(f"'{field_name}' contains control characters", field=field_name)
    return value.strip()


def _string_list(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # A convenience for clients posting one package per line.
        value = [line for line in value.splitlines()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"'{field_name}' must be a list of strings", field=field_name)
    items = [v.strip() for v in value if v.strip()]
    if len(items) > MAX_PACKAGES:
        raise ValidationError(
            f"'{field_name}' has more than {MAX_PACKAGES} entries", field=field_name
        )
    for item in items:
        if item.startswith("-"):
            raise ValidationError(
                f"Invalid entry {item!r} in '{field_name}': options are not allowed here",
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
                f"Invalid conda package spec {item!r}: {err}".split("\n")[0],
                field=field_name,
                item=item,
            ) from None
        if match.name is None:
            raise ValidationError(
                f"Invalid conda package spec {item!r}: a package name is required",
                field=field_name,
                item=item,
            )
    return items


def validate_pip_specs(specs: Any) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    items = _string_list(specs, "pip")
    for item in items:
        try:
            req = Requirement(item)
        except InvalidRequirement as err:
            raise ValidationError(
                f"Invalid pip requirement {item!r}: {err}".split("\n")[0],
                field="pip",
                item=item,
            ) from None
        if req.url and not re.match(r"^(https://|git\+https://)", req.url):
            raise ValidationError(
                f"Invalid pip requirement {item!r}: "
                "only https:// and git+https:// URLs are allowed",
                field="pip",
                item=item,
            )
    return items


def validate_channels(channels: Any) -> list[str]:
    items = _string_list(channels, "channels")
    for item in items:
        if not (CHANNEL_NAME_RE.match(item) or CHANNEL_URL_RE.match(item)):
            raise ValidationError(
                f"Invalid channel {item!r}: use a channel name or an http(s):// or file:// URL",
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
    spec = python_match_spec(value)
    validate_conda_specs([spec], "python")
    return value


def python_match_spec(python: str) -> str:
    """``"3.11"`` means any 3.11.x, as ``python=3.11`` does for conda."""
    if BARE_VERSION_RE.match(python) and python.count(".") < 2:
        return f"python {python}.*"
    if BARE_VERSION_RE.match(python):
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
                f"Invalid base environment {value!r}: use NAME, local/NAME or shared/NAME",
                field="base",
                item=value,
            ) from None
    validate_name(name, "base")
    return value


def validate_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Validate the spec fields present in ``body``; unknown keys are errors."""
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise ValidationError(f"Unknown field {key!r}", field=key)
    out: dict[str, Any] = {}
    if "display_name" in body:
        out["display_name"] = _text(body["display_name"], "display_name", 128)
    if "description" in body:
        out["description"] = _text(body["description"], "description", 2000)
    if "python" in body:
        out["python"] = validate_python(body["python"])
    if "conda" in body:
        out["conda"] = validate_conda_specs(body["conda"])
    if "pip" in body:
        out["pip"] = validate_pip_specs(body["pip"])
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

            return re.sub(r"[-_.]+", "-", Requirement(spec).name).lower()
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
    header = f"# {spec.display_name}\n" if spec.display_name != spec.name else ""
    if spec.description:
        header += "".join(f"# {line}\n" for line in spec.description.splitlines())
    if spec.base:
        header += f"# built on environment {spec.base} (its packages are not listed here)\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _yml_python(python: str) -> str:
    if BARE_VERSION_RE.match(python):
        return f"python={python}"
    return f"python{python}" if python[0] in "<>=!~" else f"python {python}"


def from_environment_yml(text: Any) -> tuple[str | None, dict[str, Any]]:
    """Parse an environment.yml into (name, validated spec fields). ``pip:`` is understood."""
    import yaml

    if not isinstance(text, str) or not text.strip():
        raise ValidationError(
            "'environment_yml' must be a non-empty string", field="environment_yml"
        )
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValidationError(
            f"environment_yml is not valid YAML: {err}".split("\n")[0], field="environment_yml"
        ) from None
    if not isinstance(doc, dict):
        raise ValidationError("environment_yml must be a mapping", field="environment_yml")
    deps = doc.get("dependencies") or []
    if not isinstance(deps, list):
        raise ValidationError("'dependencies' must be a list", field="environment_yml")
    python = None
    conda: list[str] = []
    pip: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            if not isinstance(dep["pip"], list):
                raise ValidationError("'pip' must be a list", field="pip")
            pip.extend(str(p) for p in dep["pip"])
        elif isinstance(dep, str):
            name = re.split(r"[\s=<>!~\[]", dep.strip(), maxsplit=1)[0]
            if name == "python":
                rest = dep.strip()[len("python") :].strip()
                python = (
                    rest.lstrip("=").strip() if rest.startswith("=") and "==" not in rest else rest
                )
                python = python or None
            else:
                conda.append(dep)
        else:
            raise ValidationError(
                f"Unsupported dependency entry {dep!r}", field="conda", item=str(dep)
            )
    if pip:  # conda needs its pip package to run the pip: section; our pip layer does not
        conda = [c for c in conda if c.strip() != "pip"]
    body: dict[str, Any] = {"conda": conda, "pip": pip}
    if python:
        body["python"] = python.removesuffix(".*")
    if doc.get("channels") is not None:
        body["channels"] = [c for c in doc["channels"] if c != "defaults"]
    fields = validate_fields(body, SPEC_FIELDS)
    name = doc.get("name")
    return (str(name) if name is not None else None), fields
