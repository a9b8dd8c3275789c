"""environment.yml in and out: export a spec (every value quoted or a comment), import one
(bounded in size and depth, no YAML anchors or aliases, every key type-checked).
"""

from __future__ import annotations

from typing import Any

from .errors import ValidationError
from .spec import (
    BARE_VERSION_RE,
    CONDA_NAME_END_RE,
    MAX_ITEM_LENGTH,
    SPEC_FIELDS,
    EnvSpec,
    package_name,
    shown,
    validate_fields,
)

MAX_YML_BYTES = 256 * 1024
MAX_YML_DEPTH = 20


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
    if spec.variables:
        doc["variables"] = dict(spec.variables)
    header = _comment(spec.display_name) if spec.display_name != spec.name else ""
    if spec.description:
        header += _comment(spec.description)
    if spec.base:
        header += _comment(f"built on environment {spec.base} (its packages are not listed here)")
    for dist, wheel in sorted(spec.wheels.items()):
        if any(package_name(p, "pip") == dist for p in spec.pip):
            header += _comment(f"{dist}: a private wheel, {wheel} (kept with the environment)")
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
    """Parse an environment.yml into (name, validated spec fields). ``pip:`` and ``variables:``
    are understood.

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
    if doc.get("variables") is not None:
        body["variables"] = doc["variables"]
    if python:
        body["python"] = python.removesuffix(".*")
    channels = doc.get("channels")
    if channels is not None:
        body["channels"] = (
            [c for c in channels if c != "defaults"] if isinstance(channels, list) else channels
        )
    return name, validate_fields(body, SPEC_FIELDS, allow_direct_urls)
