"""The one argparse tree of ``jupyter envmgr`` and ``%envmgr``: commands, options, help.

Standard library only: the magics import it inside kernels whose environment lacks the core's
dependencies. An argparse that raises (:class:`UsageError`, :class:`HelpShown`) instead of
exiting, so that a magic can use it too.
"""

from __future__ import annotations

import argparse

PROG = "jupyter envmgr"
EXPORT_FORMATS = ("environment.yml", "lock", "explicit", "bundle")


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

    p = add(
        "import", [scoped], "create an environment from environment.yml, requirements or a bundle"
    )
    p.add_argument(
        "file", metavar="FILE", help="environment.yml, requirements.txt, or a bundle (.tar)"
    )
    p.add_argument("--name", help="environment name (default: the file's name:)")
    p.add_argument("--display-name", metavar="TEXT", help="name shown in the launcher")
    p.add_argument("--build", action="store_true", help="build it now")

    p = add("build", [named], "build a new version from the spec, showing its log")
    p.add_argument(
        "--offline",
        action="store_true",
        help="no network: cached repodata, file:// channels, the package cache, pip_find_links",
    )

    for verb, doing in (("install", "add packages to"), ("uninstall", "remove packages from")):
        p = add(verb, [scoped], f"{doing} the current (or --env) environment's spec and rebuild")
        p.add_argument("packages", nargs="*", metavar="PKG", help="conda specs, or pip with --pip")
        p.add_argument(
            "--pip",
            nargs="*",
            metavar="REQ",
            help="pip requirements: alone, the PKGs are; followed by requirements, these are",
        )
        p.add_argument("--env", metavar="NAME", help="the environment (default: see --prefix)")
        p.add_argument(
            "--prefix",
            metavar="PATH",
            help="the environment at PATH (default: $CONDA_PREFIX, else this Python's prefix)",
        )
        if verb == "install":
            p.add_argument(
                "--all",
                action="store_true",
                help="into every environment you may change (one build each; see --scope)",
            )
            p.add_argument("--conda", nargs="+", action="extend", metavar="PKG",
                           help="conda specs (with --all, beside --pip REQ ...)")  # fmt: skip
            p.add_argument(
                "--scope", choices=("local", "shared"), help="with --all: only this store"
            )
            p.add_argument(
                "--wheel",
                metavar="FILE",
                help="a wheel file of your own, stored with the environment (install NAME --wheel "
                "FILE, or --env NAME)",
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

    p = add("pin", [scoped], "pin a notebook to an environment version (default: in use)")
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="?", help="the .ipynb file to pin")
    p.add_argument("--env", metavar="NAME", help="the environment (default: the notebook's)")
    p.add_argument("--version", metavar="N", help="the version (default: the one in use)")
    p.add_argument(
        "--check",
        action="store_true",
        help="honour the notebook's pin here (kernelspec, version made again if needed)",
    )
    p.add_argument("--prefix", metavar="PATH", help=argparse.SUPPRESS)  # %envmgr: the kernel's

    p = add("unpin", [common], "return a notebook to its environment's version in use")
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="?", help="the .ipynb file")
    p.add_argument("--prefix", metavar="PATH", help=argparse.SUPPRESS)

    p = add("gc", [common], "remove version directories nothing keeps (old, not pinned, no kernel)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shared", action="store_true", help="only the shared store")
    which.add_argument("--local", action="store_true", help="only the local store")

    p = add("du", [common], "disk use per environment and store (hard links counted once)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shared", action="store_true", help="only the shared store")
    which.add_argument("--local", action="store_true", help="only the local store")

    p = add("clean", [common], "remove cached packages no environment of your stores links")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")

    p = add("which", [common], "list the environments whose version in use holds a package")
    p.add_argument("spec", metavar="SPEC", help="a conda match spec or pip requirement")
    p.add_argument("--kind", choices=("conda", "pip"), help="only conda or only pip packages")
    p.add_argument("--scope", choices=("local", "shared"), help="only this store")

    add("adopt", [named], "manage an environment made by conda or mamba")
    add("sync-kernels", [common], "re-create missing kernelspecs, remove orphaned ones")
    add("info", [common], "show the configuration: stores, channels, versions")
    p = add("demo", [common], "write a local demo channel + wheelhouse (no network needed)")
    p.add_argument(
        "directory", metavar="DIR", nargs="?", default="~/envmgr-demo", help="where (~/envmgr-demo)"
    )
    p.add_argument(
        "--configure",
        action="store_true",
        help="point the extension at it in your jupyter_server_config.json (other settings kept)",
    )

    # Publishing with approval (core/publishing.py).
    p = add("submit", [named], "submit a draft's latest successful version for publishing")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why the team needs it")
    p = add("requests", [common], "list the publish requests (newest first)")
    p.add_argument(
        "--status",
        choices=("pending", "outdated", "publishing", "published", "rejected", "withdrawn"),
        help="only requests with this status",
    )
    request_id = Parser(add_help=False, parents=[common])
    request_id.add_argument("id", metavar="ID", help="a request id (see 'requests')")
    add("review", [request_id], "show a request: its diff against the published version, checks")
    add("approve", [request_id], "publish a request's exact lock into the shared store")
    p = add("reject", [request_id], "reject a request, with a reason the requester sees")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why it is rejected")
    add("withdraw", [request_id], "withdraw your pending request (or dismiss a rejected one)")
    p = add("audit", [common], "list the publishing audit log (who did what, when)")
    p.add_argument("--request", metavar="ID", help="only this request's events")
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
