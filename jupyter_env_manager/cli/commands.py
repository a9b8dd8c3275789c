"""``jupyter envmgr``: the command-line door, and the dispatch the magics share.

One argparse definition (:mod:`.parser`) serves ``jupyter envmgr`` and ``%envmgr``;
:func:`dispatch` turns parsed arguments into core calls and returns a :class:`~.render.Result`
(data, a one-line message, success), which each door renders its way (:mod:`.render`): text or
JSON here, HTML or text in IPython (:mod:`.magics`). Builds run in the foreground and report
to a :class:`Progress`.

This module imports only the standard library at the top: the magics import it inside kernels
whose environment lacks the core's dependencies, and run the core through
``python -m jupyter_env_manager.cli --stream`` instead (one JSON object per line on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .parser import PROG, HelpShown, Parser, UsageError, build_parser, help_text
from .publish import PUBLISH_COMMANDS
from .render import Result, build_message, render_text
from .targets import env_of_prefix, import_source, read_text, scope_of, target_env, write_text
from .versions import VERSION_COMMANDS

__all__ = [
    "HelpShown",
    "Parser",
    "UsageError",
    "build_parser",
    "help_text",
    "env_of_prefix",
    "import_source",
    "main",
    "read_text",
    "target_env",
    "write_text",
]  # one import for doors

# -- progress -------------------------------------------------------------------------------------


class Progress:
    """What a door shows while a build runs. This one shows nothing (``--json``)."""

    def start(self, title: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def event(self, event: dict[str, Any]) -> None:
        pass

    def finish(self, result: Result) -> None:
        pass


class TextProgress(Progress):
    """Log lines as they come, for a terminal."""

    def __init__(self, out=None):
        self.out = out

    def _print(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def start(self, title: str) -> None:
        self._print(f"{title} ...")

    def log(self, line: str) -> None:
        self._print(f"  {line}")


class StreamProgress(Progress):
    """JSON lines on stdout, read by the magics when they run the core in another Python."""

    def start(self, title: str) -> None:
        emit_line({"start": title})

    def log(self, line: str) -> None:
        emit_line({"log": line})

    def event(self, event: dict[str, Any]) -> None:
        emit_line({"event": event})

    def finish(self, result: Result) -> None:
        emit_line({"finish": result.to_dict()})


def emit_line(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- dispatch -------------------------------------------------------------------------------------


def make_service(progress: Progress | None = None):
    """The core, configured by ``c.EnvManager`` of the Jupyter server config files; its builds
    run in the foreground, reporting to ``progress``."""
    from ..config import EnvManager, load_config
    from ..core.runner import ForegroundRunner
    from ..core.service import EnvService

    service = EnvService(EnvManager(config=load_config()))
    service.runner = ForegroundRunner(service, progress or Progress())
    return service


def dispatch(service, args: argparse.Namespace, progress: Progress | None = None) -> Result:
    """Run one parsed command against the core. Raises the core's errors and UsageError."""
    handler = COMMANDS.get(args.command)
    if handler is None:
        raise UsageError(f"unknown command {args.command!r}")
    return handler(service, args, progress or Progress())


def cmd_list(service, args, progress) -> Result:
    scope = "shared" if args.shared else "local" if args.local else None
    envs = service.envs.list(scope)
    return Result("envs", {"environments": envs}, "" if envs else "No environments yet.")


def cmd_show(service, args, progress) -> Result:
    return Result("env", service.envs.get(scope_of(args), args.name))


def cmd_create(service, args, progress) -> Result:
    scope = scope_of(args)
    if args.file:
        clash = [
            f"--{opt.replace('_', '-')}"
            for opt in ("python", "conda", "pip", "channel", "base", "description")
            if getattr(args, opt)
        ]
        if clash:
            raise UsageError(f"--file cannot be combined with {', '.join(clash)}")
        body = {"scope": scope, "name": args.name, **import_source(args.file)}
        if args.display_name:
            body["display_name"] = args.display_name
        return _created(service, *service.envs.import_({**body, "build": args.build}))
    body = {"scope": scope, "name": args.name}
    for key, value in (
        ("python", args.python),
        ("conda", args.conda),
        ("pip", args.pip),
        ("channels", args.channel),
        ("base", args.base),
        ("display_name", args.display_name),
        ("description", args.description),
    ):
        if value is not None:
            body[key] = value
    return _created(service, *service.envs.create({**body, "build": args.build}))


def cmd_import(service, args, progress) -> Result:
    if args.file.endswith(".tar"):  # a bundle: its exact lock, built with no network
        from ..core.bundle import import_bundle

        return _created(service, *import_bundle(service, args.file, scope_of(args), args.name))
    body = {"scope": scope_of(args), **import_source(args.file)}
    if args.name:
        body["name"] = args.name
    if args.display_name:
        body["display_name"] = args.display_name
    return _created(service, *service.envs.import_({**body, "build": args.build}))


def _created(service, env: dict[str, Any], build) -> Result:
    scope, name = env["scope"], env["name"]
    if build is not None:
        return build_result(service, scope, name, build)
    return Result("message", env, f"✓ created {scope}/{name} (not built yet)")


def cmd_build(service, args, progress) -> Result:
    scope = scope_of(args)
    build = service.builds.start(scope, args.name, offline=args.offline)
    return build_result(service, scope, args.name, build)


def install_packages(args) -> tuple[list[str], list[str]]:
    """(conda, pip) of ``install``/``uninstall``: PKG... are pip requirements with a bare
    ``--pip``, conda specs otherwise; ``--pip REQ...`` and ``--conda PKG...`` add to them."""
    pip_given = args.pip is not None
    conda = list(getattr(args, "conda", None) or [])
    pip = list(args.pip or [])
    (pip if pip_given and not args.pip else conda).extend(args.packages)
    if not conda and not pip:
        raise UsageError("give the packages: PKG ..., --pip REQ ... or --conda PKG ...")
    return conda, pip


def cmd_install(service, args, progress) -> Result:
    if getattr(args, "wheel", None):
        return install_wheel(service, args)
    conda, pip = install_packages(args)
    if getattr(args, "all", False):
        return install_all(service, args, conda, pip)
    if conda and pip:
        raise UsageError("conda and pip packages in one install need --all; run two installs")
    scope, name = target_env(service, args)
    build = service.builds.install(
        scope, name, conda or pip, pip=bool(pip), remove=args.command == "uninstall"
    )
    return build_result(service, scope, name, build, f" (the spec of {scope}/{name} is unchanged)")


def install_wheel(service, args) -> Result:
    """``install NAME --wheel FILE`` (or ``--env NAME``/``--prefix``): a private wheel."""
    from ..core.errors import ValidationError

    if args.all or args.conda or args.pip is not None or len(args.packages) > 1:
        raise UsageError("--wheel FILE takes one environment: install NAME --wheel FILE")
    if args.packages and not args.env:
        args.env = args.packages[0]
    scope, name = target_env(service, args)
    path = Path(args.wheel)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValidationError(
            f"Cannot read {args.wheel}: {err.strerror}", field="wheel", item=args.wheel
        ) from None
    build = service.wheels.add(scope, name, path.name, data)
    return build_result(service, scope, name, build, f" (the spec of {scope}/{name} is unchanged)")


def install_all(service, args, conda: list[str], pip: list[str]) -> Result:
    from .render import fleet_summary

    if args.env or args.prefix or args.shared:
        raise UsageError("--all installs into every environment: use --scope, not --env, "
                         "--prefix or --shared")  # fmt: skip
    body: dict[str, Any] = {"conda": conda, "pip": pip}
    if args.scope:
        body["scope"] = args.scope
    rows = service.fleet.install_all(body)
    ok = all(r["outcome"] in ("succeeded", "queued", "skipped") for r in rows)
    return Result("fleet", {"results": rows}, fleet_summary(rows), ok=ok)


def cmd_which(service, args, progress) -> Result:
    data = service.fleet.which(args.spec, args.scope, args.kind)
    found = len({(m["scope"], m["name"]) for m in data["matches"]})
    message = (
        f"{found} environment(s) hold {args.spec!r}"
        if found
        else f"No environment holds {args.spec!r}."
    )
    return Result("which", data, message)


def cmd_activate(service, args, progress) -> Result:
    env = service.kernels.activate(scope_of(args), args.name)
    kernel = env["kernel"]
    message = f"✓ kernel {kernel['name']} ({kernel['display_name']}) is in the launcher"
    return Result("message", env, message)


def cmd_deactivate(service, args, progress) -> Result:
    scope = scope_of(args)
    env = service.kernels.deactivate(scope, args.name)
    kname = (env["kernel"] or {}).get("name") or args.name
    return Result("message", env, f"✓ kernel {kname} removed; {scope}/{args.name} is kept")


def cmd_copy(service, args, progress) -> Result:
    env, build = service.sharing.copy(scope_of(args), args.name, args.to, args.new_name)
    return build_result(service, env["scope"], env["name"], build)


def cmd_versions(service, args, progress) -> Result:
    env = service.envs.get(scope_of(args), args.name)
    return Result("builds", {"builds": env["versions"], "active_version": env["version"]})


def cmd_revert(service, args, progress) -> Result:
    scope = scope_of(args)
    return build_result(
        service, scope, args.name, service.builds.revert(scope, args.name, args.version)
    )


def cmd_log(service, args, progress) -> Result:
    from ..core.bodies import parse_version
    from ..core.errors import ValidationError

    scope = scope_of(args)
    if args.version is None:
        builds = service.builds.list(scope, args.name)
        if not builds:
            raise ValidationError(f"Environment {args.name!r} has no builds yet", field="version")
        version = builds[-1]["version"]
    else:
        version = parse_version(args.version)
    chunks, offset = [], 0
    while True:
        data, offset = service.builds.read_log(scope, args.name, version, offset)
        if not data:
            break
        chunks.append(data)
    text = b"".join(chunks).decode(errors="replace")
    data = {"scope": scope, "name": args.name, "version": version, "log": text}
    return Result("text", data, text=text)


def cmd_export(service, args, progress) -> Result:
    scope = scope_of(args)
    if args.format == "bundle":
        from ..core.bundle import export_bundle

        if not args.output:
            raise UsageError("--format bundle writes a file: add -o NAME.tar")
        done = export_bundle(service, scope, args.name, args.output)
        message = (
            f"✓ wrote {args.output}: {done['conda']} conda archives, {done['pip']} wheels, "
            "with sha256 checksums (import it with: jupyter envmgr import " + args.output + ")"
        )
        return Result("message", done, message)
    text, content_type, filename = service.envs.export(scope, args.name, args.format)
    data = {"format": args.format, "content_type": content_type, "filename": filename}
    if args.output:
        write_text(args.output, text)
        return Result("message", {**data, "path": args.output}, f"✓ wrote {args.output}")
    return Result("text", {**data, "content": text}, text=text)


def cmd_delete(service, args, progress) -> Result:
    scope = scope_of(args)
    if not args.yes:
        raise UsageError(
            f"delete removes {scope}/{args.name}, all its versions and its kernel: "
            "add --yes to confirm"
        )
    service.envs.delete(scope, args.name)
    return Result(
        "message",
        {"deleted": {"scope": scope, "name": args.name}},
        f"✓ deleted {scope}/{args.name}",
    )


def cmd_packages(service, args, progress) -> Result:
    return Result("packages", service.packages.installed(scope_of(args), args.name, args.version))


def cmd_diff(service, args, progress) -> Result:
    from ..core.spec import validate_base
    from .render import diff_summary

    other = None
    if args.other:
        scope, _, name = str(validate_base(args.other)).rpartition("/")
        other = (scope or scope_of(args), name)
    data = service.packages.diff(
        scope_of(args), args.name, args.version_from, args.version_to, other=other
    )
    return Result("diff", data, diff_summary(data))


def cmd_search(service, args, progress) -> Result:
    env = (scope_of(args), args.env) if args.env else (None, None)
    data = service.packages.search(args.query, *env)
    return Result(
        "search", data, "" if data["packages"] else f"No package starts with {args.query!r}."
    )


def cmd_adopt(service, args, progress) -> Result:
    env = service.envs.adopt(scope_of(args), args.name)
    message = (
        f"✓ adopted {env['scope']}/{env['name']} as v{env['version']} ({env['packages']} packages)"
    )
    return Result("message", env, message)


def cmd_sync_kernels(service, args, progress) -> Result:
    done = service.kernels.sync()
    parts = [
        f"{what} {', '.join(done[what]) or '-'}"
        for what in ("created", "updated", "removed", "failed")
    ]
    return Result("message", done, "✓ kernelspecs " + "; ".join(parts))


def cmd_info(service, args, progress) -> Result:
    return Result("info", service.info())


COMMANDS = {
    "list": cmd_list,
    "show": cmd_show,
    "create": cmd_create,
    "import": cmd_import,
    "build": cmd_build,
    "install": cmd_install,
    "uninstall": cmd_install,
    "activate": cmd_activate,
    "deactivate": cmd_deactivate,
    "copy": cmd_copy,
    "versions": cmd_versions,
    "revert": cmd_revert,
    "log": cmd_log,
    "export": cmd_export,
    "delete": cmd_delete,
    "packages": cmd_packages,
    "diff": cmd_diff,
    "search": cmd_search,
    "adopt": cmd_adopt,
    "which": cmd_which,
    "sync-kernels": cmd_sync_kernels,
    "info": cmd_info,
    "demo": lambda service, args, progress: _demo(service, args, progress),
    **VERSION_COMMANDS,
    **PUBLISH_COMMANDS,
}


def _demo(service, args, progress) -> Result:
    from .demo import cmd_demo

    return cmd_demo(service, args, progress)


def build_result(service, scope: str, name: str, build, failed_note: str = "") -> Result:
    """The Result of a build the foreground runner has run (``failed_note``: said on failure)."""
    env = service.envs.get(scope, name, versions=False)
    public = build.public()
    elapsed = _elapsed(public)
    ok = build.status == "succeeded"
    message = build_message(scope, name, public, env, elapsed, "" if ok else failed_note)
    result = Result("build", {"environment": env, "build": public}, message, ok=ok)
    getattr(service.runner, "progress", Progress()).finish(result)
    return result


def _elapsed(build: dict[str, Any]) -> float:
    from datetime import datetime

    try:
        start = datetime.fromisoformat(build["created_at"])
        end = datetime.fromisoformat(build["finished_at"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``jupyter envmgr``: 0 on success, 1 on errors and failed builds, 2 on bad usage."""
    parser = build_parser(PROG)
    stream = as_json = False
    try:
        args = parser.parse_args(argv)
        stream, as_json = args.stream, args.json
        if args.command in (None, "help"):
            print(help_text(parser, getattr(args, "topic", None)), end="")
            return 0
        if stream:
            progress: Progress = StreamProgress()
        else:
            progress = Progress() if as_json else TextProgress()
        # demo needs no core, and must work when the config it fixes cannot be read
        service = None if args.command == "demo" else make_service(progress)
        result = dispatch(service, args, progress)
    except HelpShown as shown:
        return shown.status
    except UsageError as err:
        return _fail(err.message + _see(err.prog), 2, stream, usage=True)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, stream)
    except Exception as err:
        from ..core.errors import EnvManagerError

        if not isinstance(err, EnvManagerError):
            raise
        if as_json and not stream:
            print(json.dumps(err.to_dict()))
        return _fail(err.message, 1, stream, body=err.to_dict())
    if stream:
        emit_line({"result": result.to_dict()})
    elif as_json:
        print(json.dumps(result.data, indent=1))
    else:
        text = render_text(result if result.ok else Result(result.kind, result.data, ""))
        if text:
            print(text)
        if not result.ok:
            print(result.message, file=sys.stderr)
    return 0 if result.ok else 1


def _see(prog: str) -> str:
    return f" (see '{prog} --help')" if prog and prog != PROG else ""


def _fail(message: str, code: int, stream: bool, usage: bool = False, body=None) -> int:
    if stream:
        emit_line({"error": body or {"message": message}, "usage": usage, "code": code})
    else:
        print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
