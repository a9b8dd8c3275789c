"""Request bodies and request numbers: what every door accepts, checked in one place.

The REST handlers, the ``jupyter envmgr`` CLI and the ``%envmgr`` magics all hand their input to
these functions (through :class:`~.service.EnvService` for create, import and update), so the
same bad input gets the same 400 and the same message whichever door it came through:

- a body is a JSON object of bounded size and nesting, with no unknown field;
- every field has one type (a string where a string is expected, ``true``/``false`` for a
  boolean: ``"no"`` is not a boolean), and a missing required field says "required" while a
  wrongly typed one says what type it must be;
- numbers in paths, queries and arguments (build versions, log offsets) are ASCII digits of
  bounded length (``str.isdigit`` would accept ``²`` and ``١``).

Nothing here touches a store: a request refused here has created nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .envyml import from_environment_yml
from .errors import ValidationError
from .spec import (
    SPEC_FIELDS,
    check_known,
    shown,
    validate_fields,
    validate_name,
    validate_scope,
    validate_text,
)

MAX_BODY_BYTES = 1024 * 1024
# Versions and offsets are small: bounded so a 300-digit number never reaches the filesystem.
VERSION_RE = re.compile(r"[0-9]{1,9}")
OFFSET_RE = re.compile(r"[0-9]{1,15}")

CREATE_FIELDS = (*SPEC_FIELDS, "scope", "name", "build")
IMPORT_FIELDS = ("scope", "name", "display_name", "environment_yml", "build", "requirements_txt")
COPY_FIELDS = ("to", "name")
REVERT_FIELDS = ("version",)
INSTALL_FIELDS = ("packages", "pip")


class BodyTooLarge(ValidationError):
    """A request body over :data:`MAX_BODY_BYTES` (answered 413 before it is parsed)."""

    status = 413


@dataclass
class CreateRequest:
    """A validated create (or import) request; ``fields`` are validated spec fields."""

    scope: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    build: bool = False


@dataclass
class CopyRequest:
    to: str
    name: str | None = None


def parse_json_body(raw: bytes | str | None, required: bool = True) -> dict[str, Any]:
    """A request body as a JSON object: bounded in size, nesting and type. No body is a 400
    where the route requires one (``{}`` is a body: a PATCH of nothing, say), else ``{}``."""
    if not raw:
        if required:
            raise ValidationError("A JSON body is required", field="body")
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValidationError("The request body is nested too deeply") from None
    except ValueError:
        raise ValidationError("The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object")
    return data


def parse_version(value: Any, field_name: str = "version") -> int:
    """A build version from a path, a query or a command line: 1 to 9 ASCII digits, >= 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValidationError(f"'{field_name}' must be a version number", field=field_name)
    if not VERSION_RE.fullmatch(text) or int(text) < 1:
        raise ValidationError(
            f"Invalid version {shown(text)}: it must be a version number (1, 2, ...)",
            field=field_name,
            item=text[:100],
        )
    return int(text)


def parse_offset(value: Any) -> int:
    """A log offset (a query argument): ASCII digits, at most 15."""
    text = str(value)
    if not OFFSET_RE.fullmatch(text):
        raise ValidationError(
            f"Invalid offset {shown(text)}: use a byte offset (0, 1, ...)",
            field="offset",
            item=text[:100],
        )
    return int(text)


def _boolean(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError(f"'{key}' must be true or false", field=key)
    return value


def _scope(body: dict[str, Any], key: str = "scope") -> str:
    return validate_scope(body[key], key) if key in body else "local"


def create_request(body: Any, allow_direct_urls: bool = False) -> CreateRequest:
    """The body of ``POST environments`` (and of ``jupyter envmgr create``)."""
    check_known(body, CREATE_FIELDS)
    scope = _scope(body)
    name = validate_name(body.get("name"))
    build = _boolean(body, "build")
    spec_body = {k: v for k, v in body.items() if k in SPEC_FIELDS}
    fields = validate_fields(spec_body, SPEC_FIELDS, allow_direct_urls)
    return CreateRequest(scope, name, fields, build)


def import_request(body: Any, allow_direct_urls: bool = False) -> CreateRequest:
    """The body of ``POST environments/import``: the spec comes from the environment.yml, or
    from a requirements.txt (``requirements_txt``: its requirements become the pip layer)."""
    check_known(body, IMPORT_FIELDS)
    if "requirements_txt" in body:
        return _requirements_request(body, allow_direct_urls)
    scope = _scope(body)
    name = body.get("name")
    if name is not None:
        validate_name(name)
    build = _boolean(body, "build")
    display_name = validate_text(body.get("display_name"), "display_name", 128)
    yml_name, fields = from_environment_yml(body.get("environment_yml"), allow_direct_urls)
    name = name or yml_name
    if not name:
        raise ValidationError("'name' is required: the environment.yml has no name", field="name")
    name = validate_name(name)
    if display_name:
        fields["display_name"] = display_name
    return CreateRequest(scope, name, fields, build)


def _requirements_request(body: dict[str, Any], allow_direct_urls: bool) -> CreateRequest:
    from .requirements import parse_requirements

    if "environment_yml" in body:
        raise ValidationError(
            "Give either 'environment_yml' or 'requirements_txt', not both",
            field="requirements_txt",
        )
    scope = _scope(body)
    if body.get("name") is None:
        raise ValidationError(
            "'name' is required: a requirements file has no environment name", field="name"
        )
    name = validate_name(body["name"])
    build = _boolean(body, "build")
    display_name = validate_text(body.get("display_name"), "display_name", 128)
    fields = validate_fields(
        {"pip": parse_requirements(body["requirements_txt"], allow_direct_urls)},
        SPEC_FIELDS,
        allow_direct_urls,
    )
    if display_name:
        fields["display_name"] = display_name
    return CreateRequest(scope, name, fields, build)


def update_fields(body: Any, allow_direct_urls: bool = False) -> dict[str, Any]:
    """The body of ``PATCH environments/{scope}/{name}``: spec fields only."""
    return validate_fields(check_known(body, SPEC_FIELDS), SPEC_FIELDS, allow_direct_urls)


def copy_request(body: Any) -> CopyRequest:
    """The body of ``POST .../copy``: ``to`` (a scope) and an optional new ``name``."""
    check_known(body, COPY_FIELDS)
    if body.get("to") is None:
        raise ValidationError("'to' is required: local or shared", field="to")
    to = validate_scope(body["to"], "to")
    name = body.get("name")
    return CopyRequest(to, None if name is None else validate_name(name))


@dataclass
class InstallRequest:
    packages: list[str]
    pip: bool = False


def install_request(body: Any) -> InstallRequest:
    """The body of ``POST .../install`` and ``.../uninstall``: ``packages`` and ``pip``."""
    check_known(body, INSTALL_FIELDS)
    packages = body.get("packages")
    if not isinstance(packages, list) or not packages:
        raise ValidationError("'packages' must be a non-empty list of strings", field="packages")
    if not all(isinstance(p, str) for p in packages):
        raise ValidationError("'packages' must be a non-empty list of strings", field="packages")
    return InstallRequest(packages, _boolean(body, "pip"))


def revert_version(body: Any) -> int:
    """The body of ``POST .../revert``: ``version``, an integer (not a string, not a boolean)."""
    check_known(body, REVERT_FIELDS)
    version = body.get("version")
    if version is None:
        raise ValidationError("'version' is required", field="version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationError("'version' must be an integer", field="version")
    return parse_version(version)


BUILD_FIELDS = ("offline",)


def build_request(body: Any) -> bool:
    """The body of ``POST .../builds`` (may be empty): ``offline``, a boolean. Returns it."""
    check_known(body, BUILD_FIELDS)
    return _boolean(body, "offline")


def check_offset(offset: Any, size: int) -> int:
    """A log offset must be an integer within the log (``size`` bytes so far)."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValidationError("'offset' must be a non-negative integer", field="offset")
    if offset > size:
        raise ValidationError(
            f"Invalid offset {offset}: the log has {size} bytes so far",
            field="offset",
            item=str(offset),
        )
    return offset


SHA256_RE = re.compile(r"[0-9a-f]{64}")


def check_pin_body(pin: Any) -> tuple[str, str, int, str | None]:
    """(scope, name, version, lock_sha256) of a pin (a notebook's ``metadata.envmgr``)."""
    if not isinstance(pin, dict):
        raise ValidationError("The pin must be an object", field="pin")
    scope = pin.get("scope", "local")
    if not isinstance(scope, str):
        raise ValidationError("scope must be a string", field="scope")
    validate_scope(scope)
    name = pin.get("name")
    if not isinstance(name, str):
        raise ValidationError("name must be a string", field="name")
    validate_name(name)
    version = pin.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 10**9:
        raise ValidationError(
            f"version must be a version number, not {version!r}", field="version", item=str(version)
        )
    sha = pin.get("lock_sha256")
    if sha is not None and (not isinstance(sha, str) or not SHA256_RE.fullmatch(sha)):
        raise ValidationError(
            "lock_sha256 must be 64 lowercase hex digits", field="lock_sha256", item=str(sha)
        )
    return scope, name, version, sha


def pin_request(body: Any) -> tuple[str, str, int | None]:
    """(scope, name, version or None) of ``POST pins``."""
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object", field="body")
    unknown = sorted(set(body) - {"scope", "name", "version"})
    if unknown:
        raise ValidationError(f"Unknown field {unknown[0]!r}", field=unknown[0], item=unknown[0])
    version = body.get("version")
    scope, name, _, _ = check_pin_body({**body, "version": 1 if version is None else version})
    return scope, name, version


def gc_request(body: Any) -> tuple[str | None, bool]:
    """(scope or None for both, dry_run) of ``POST gc``."""
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object", field="body")
    unknown = sorted(set(body) - {"scope", "dry_run"})
    if unknown:
        raise ValidationError(f"Unknown field {unknown[0]!r}", field=unknown[0], item=unknown[0])
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValidationError("dry_run must be true or false", field="dry_run")
    scope = body.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise ValidationError("scope must be a string", field="scope")
        validate_scope(scope)
    return scope, dry_run
