"""``jupyter envmgr``: the command-line door, and the parser and dispatch the magics share.

One argparse definition (:func:`build_parser`) serves ``jupyter envmgr`` and ``%envmgr``;
:func:`dispatch` turns parsed arguments into core calls and returns a :class:`~.views.Result`
(data, a one-line message, success), which each door renders its way (:mod:`.views`): text or
JSON here, HTML or text in IPython (:mod:`.magics`). Builds run in the foreground and report
to a :class:`Progress`.

This module imports only the standard library at the top: the magics import it inside kernels
whose environment lacks the core's dependencies, and run the core through
``python -m jupyter_env_manager.cli --stream`` instead (one JSON object per line on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .render import Result, build_message, render_text

PROG = "jupyter envmgr"
EXPORT_FORMATS = ("environment.yml", "lock", "explicit")

# -- the parser -----------------------------------------------------------------------------------


class UsageError(Exception):
    """Bad command-line usage (exit code 2); ``prog`` names the (sub)command that refused it."""

    def __init__(self, message: str, prog: str = ""):
        super().__init__(message)
        self.message = message
        self.prog = prog


class HelpShown(Exception):
    """argparse printed help (or a version) and wanted to exit."""

    def __init__(self, status: int = 0):
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so a magic can use it too."""

    commands: dict[str, Parser]  # set on the top-level parser: command name -> its parser

    def error(self, message: str):
        raise UsageError(message, self.prog)

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            raise UsageError(message.strip(), self.prog)
        raise HelpShown(status)


def build_parser(prog: str = PROG) -> Parser:
    """The subcommands of ``jupyter envmgr`` and ``%envmgr`` (``prog`` is shown in help)."""
    common = Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--stream", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    scoped = Parser(add_help=False, parents=[common])
    scoped.add_argument("--shared", action="store_true", help="the environment of the shared store")
    named = Parser(add_help=False, parents=[scoped])
    named.add_argument("name", metavar="NAME", help="environment name")

    parser = Parser(
        prog=prog,
        description="Manage the conda environments of Jupyter (the local and shared stores).",
        epilog=f"Run '{prog} COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def add(name: str, parents: list[Parser], help_text: str) -> Parser:
        return sub.add_parser(name, parents=parents, help=help_text, description=help_text)

    p = add("list", [common], "list the environments of both stores")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shared", action="store_true", help="only the shared store")
    which.add_argument("--local", action="store_true", help="only the local store")

    add("show", [named], "show an environment: status, spec, kernel, versions")

    p = add("create", [named], "create an environment (and build it with --build)")
    p.add_argument("--python", metavar="X", help="python version, e.g. 3.11")
    p.add_argument("--conda", nargs="+", action="extend", metavar="PKG", help="conda packages")
    p.add_argument("--pip", nargs="+", action="extend", metavar="PKG", help="pip requirements")
    p.add_argument("--channel", nargs="+", action="extend", metavar="CH", help="conda channels")
    p.add_argument(
        "--base", metavar="ENV", help="build on a built environment (NAME or scope/NAME)"
    )
    p.add_argument("--display-name", metavar="TEXT", help="name shown in the launcher")
    p.add_argument("--description", metavar="TEXT", help="a description")
    p.add_argument("--file", metavar="environment.yml", help="take the packages from this file")
    p.add_argument("--build", action="store_true", help="build it now")

    p = add("import", [scoped], "create an environment from an environment.yml")
    p.add_argument("file", metavar="FILE", help="the environment.yml")
    p.add_argument("--name", help="environment name (default: the file's name:)")
    p.add_argument("--display-name", metavar="TEXT", help="name shown in the launcher")
    p.add_argument("--build", action="store_true", help="build it now")

    add("build", [named], "build a new version from the spec, showing its log")

    for verb, doing in (("install", "add packages to"), ("uninstall", "remove packages from")):
        p = add(verb, [scoped], f"{doing} the current (or --env) environment's spec and rebuild")
        p.add_argument("packages", nargs="+", metavar="PKG", help="conda specs, or pip with --pip")
        p.add_argument("--pip", action="store_true", help="pip requirements, not conda packages")
        p.add_argument("--env", metavar="NAME", help="the environment (default: see --prefix)")
        p.add_argument(
            "--prefix",
            metavar="PATH",
            help="the environment at PATH (default: $CONDA_PREFIX, else this Python's prefix)",
        )

    add("activate", [named], "make the environment's kernel appear in the launcher")
    add("deactivate", [named], "remove the environment's kernel (the environment is kept)")

    p = add("copy", [named], "copy the version in use into a store (no re-solve)")
    p.add_argument("--to", required=True, choices=("shared", "local"), help="the target store")
    p.add_argument("--name", dest="new_name", metavar="NEW", help="name of the copy")

    add("versions", [named], "list the versions (builds) of an environment")

    p = add("revert", [named], "put a former version back in use (its exact lock)")
    p.add_argument("version", metavar="VERSION", help="a version that built successfully")

    p = add("log", [named], "print the log of a build (default: the latest)")
    p.add_argument("version", metavar="VERSION", nargs="?", help="build version")

    p = add("export", [named], "print the spec or lock of an environment")
    p.add_argument("--format", default="environment.yml", choices=EXPORT_FORMATS, help="format")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of printing")

    p = add("delete", [named], "delete an environment, its versions and its kernel")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")

    p = add("packages", [named], "list the packages of a version (default: the one in use)")
    p.add_argument("--version", metavar="N", help="a version that built successfully")

    p = add("diff", [named], "what changed between two versions, or against another environment")
    p.add_argument("version_from", metavar="A", help="the version to compare from")
    p.add_argument("version_to", metavar="B", nargs="?", help="the version to compare to "
                   "(default: the one in use)")  # fmt: skip
    p.add_argument(
        "--other", metavar="SCOPE/NAME", help="compare with this environment's version B instead"
    )

    p = add("search", [scoped], "find packages by the start of their name in the channels")
    p.add_argument("query", metavar="PREFIX", help="the start of a package name")
    p.add_argument("--env", metavar="NAME", help="search the channels of this environment")

    add("adopt", [named], "manage an environment made by conda or mamba")
    add("sync-kernels", [common], "re-create missing kernelspecs, remove orphaned ones")
    add("info", [common], "show the configuration: stores, channels, versions")
    p = add("help", [], "show help for a command")
    p.add_argument("topic", metavar="COMMAND", nargs="?", help="a command")
    parser.commands = sub.choices
    return parser


def help_text(parser: Parser, topic: str | None = None) -> str:
    """The help of ``parser`` or of one of its commands."""
    if not topic:
        return parser.format_help()
    if topic not in parser.commands:
        raise UsageError(f"unknown command {topic!r}", parser.prog)
    return parser.commands[topic].format_help()


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


def _scope(args) -> str:
    return "shared" if getattr(args, "shared", False) else "local"


def cmd_list(service, args, progress) -> Result:
    scope = "shared" if args.shared else "local" if args.local else None
    envs = service.envs.list(scope)
    return Result("envs", {"environments": envs}, "" if envs else "No environments yet.")


def cmd_show(service, args, progress) -> Result:
    return Result("env", service.envs.get(_scope(args), args.name))


def cmd_create(service, args, progress) -> Result:
    scope = _scope(args)
    if args.file:
        clash = [
            f"--{opt.replace('_', '-')}"
            for opt in ("python", "conda", "pip", "channel", "base", "description")
            if getattr(args, opt)
        ]
        if clash:
            raise UsageError(f"--file cannot be combined with {', '.join(clash)}")
        body = {"scope": scope, "name": args.name, "environment_yml": read_text(args.file)}
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
    body = {"scope": _scope(args), "environment_yml": read_text(args.file)}
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
    scope = _scope(args)
    return build_result(service, scope, args.name, service.builds.start(scope, args.name))


def cmd_install(service, args, progress) -> Result:
    scope, name = target_env(service, args)
    build = service.builds.install(
        scope, name, args.packages, pip=args.pip, remove=args.command == "uninstall"
    )
    return build_result(service, scope, name, build, f" (the spec of {scope}/{name} is unchanged)")


def cmd_activate(service, args, progress) -> Result:
    env = service.kernels.activate(_scope(args), args.name)
    kernel = env["kernel"]
    message = f"✓ kernel {kernel['name']} ({kernel['display_name']}) is in the launcher"
    return Result("message", env, message)


def cmd_deactivate(service, args, progress) -> Result:
    scope = _scope(args)
    env = service.kernels.deactivate(scope, args.name)
    kname = (env["kernel"] or {}).get("name") or args.name
    return Result("message", env, f"✓ kernel {kname} removed; {scope}/{args.name} is kept")


def cmd_copy(service, args, progress) -> Result:
    env, build = service.sharing.copy(_scope(args), args.name, args.to, args.new_name)
    return build_result(service, env["scope"], env["name"], build)


def cmd_versions(service, args, progress) -> Result:
    env = service.envs.get(_scope(args), args.name)
    return Result("builds", {"builds": env["versions"], "active_version": env["version"]})


def cmd_revert(service, args, progress) -> Result:
    scope = _scope(args)
    return build_result(
        service, scope, args.name, service.builds.revert(scope, args.name, args.version)
    )


def cmd_log(service, args, progress) -> Result:
    from ..core.bodies import parse_version
    from ..core.errors import ValidationError

    scope = _scope(args)
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
    scope = _scope(args)
    text, content_type, filename = service.envs.export(scope, args.name, args.format)
    data = {"format": args.format, "content_type": content_type, "filename": filename}
    if args.output:
        write_text(args.output, text)
        return Result("message", {**data, "path": args.output}, f"✓ wrote {args.output}")
    return Result("text", {**data, "content": text}, text=text)


def cmd_delete(service, args, progress) -> Result:
    scope = _scope(args)
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
    return Result("packages", service.packages.installed(_scope(args), args.name, args.version))


def cmd_diff(service, args, progress) -> Result:
    from ..core.spec import validate_base
    from .render import diff_summary

    other = None
    if args.other:
        scope, _, name = str(validate_base(args.other)).rpartition("/")
        other = (scope or _scope(args), name)
    data = service.packages.diff(
        _scope(args), args.name, args.version_from, args.version_to, other=other
    )
    return Result("diff", data, diff_summary(data))


def cmd_search(service, args, progress) -> Result:
    env = (_scope(args), args.env) if args.env else (None, None)
    data = service.packages.search(args.query, *env)
    return Result(
        "search", data, "" if data["packages"] else f"No package starts with {args.query!r}."
    )


def cmd_adopt(service, args, progress) -> Result:
    env = service.envs.adopt(_scope(args), args.name)
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
    "sync-kernels": cmd_sync_kernels,
    "info": cmd_info,
}


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


# -- small pure helpers ---------------------------------------------------------------------------


def read_text(path: str) -> str:
    from ..core.errors import ValidationError

    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ValidationError(f"Cannot read {path}: {reason}", field="file", item=path) from None


def write_text(path: str, text: str) -> None:
    from ..core.errors import ValidationError

    try:
        Path(path).write_text(text)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ValidationError(f"Cannot write {path}: {reason}", field="output", item=path) from None


def env_of_prefix(service, prefix: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(scope, name) of the store environment at ``prefix``, or None."""
    path = Path(prefix).resolve()
    for store in service.stores():
        if path.parent == store.root.resolve():
            return store.scope, path.name
    return None


def target_env(service, args) -> tuple[str, str]:
    """The environment ``install``/``uninstall`` change: --env, else the one at --prefix."""
    from ..core.errors import ValidationError

    if args.env:
        return _scope(args), args.env
    prefix = args.prefix or os.environ.get("CONDA_PREFIX") or sys.prefix
    found = env_of_prefix(service, prefix)
    if found is None:
        raise ValidationError(
            f"{prefix} is not an environment of the local or shared store: name one with --env",
            field="env",
            item=str(prefix),
        )
    return found


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
        result = dispatch(make_service(progress), args, progress)
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
