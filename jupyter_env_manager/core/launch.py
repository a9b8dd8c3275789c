"""The kernel launcher: a kernel starts on the version in use and stays on it.

Our kernelspecs' argv is ``python -m jupyter_env_manager.core.launch --root R --scope S --name
N --built-for DIR -- <kernel argv>``, where ``<kernel argv>`` and the kernelspec's env name
``DIR``, the directory of the version in use when the kernelspec was written. At every start
(and restart) of a kernel the launcher:

1. resolves ``<root>/<name>`` to the directory of the version in use *now* (one ``realpath``:
   the switch to a new version is one rename of that symlink), and rewrites ``DIR`` to it in
   argv and in the environment, so the kernel's python, ``sys.prefix``, ``PATH`` and
   ``CONDA_PREFIX`` all name that version's own directory, which never changes while it is
   kept: a rebuild meanwhile does not change a file the kernel loads later;
2. writes the kernel's liveness record in the store (see :mod:`.liveness`), so no server on
   any host removes that directory while the kernel runs, and forks a small watcher that keeps
   the record fresh and removes it when the kernel ends;
3. ``exec``-s the kernel: the process Jupyter started, signals and waits for is the kernel.

Any Jupyter client (JupyterLab, nbconvert, papermill, VS Code) runs it: it is the kernelspec's
argv. It is in the path of every kernel start, so at import it needs nothing but ``os``,
``sys``, ``json`` and our light modules (:mod:`.identity`, :mod:`.liveness`): no argparse,
pathlib, dataclasses or socket (a test holds it to that); a pinned kernel's check loads the
service, and only then.
"""

from __future__ import annotations

import os
import sys

from . import liveness
from .identity import MARKER, current_user

USAGE = (
    "usage: python -m jupyter_env_manager.core.launch --root ROOT --scope SCOPE --name NAME "
    "--built-for DIR [--version N] -- KERNEL-COMMAND..."
)
OPTIONS = {"--root": "root", "--scope": "scope", "--name": "name", "--built-for": "built_for"}


class Args:
    """The launcher's options (the kernelspec we wrote gives each once)."""

    root: str
    scope: str
    name: str
    built_for: str
    version: int | None = None


def parse(argv: list[str]) -> tuple[Args, list[str]]:
    if "--" not in argv:
        raise SystemExit("jupyter_env_manager launcher: expected '-- <kernel command>'")
    split = argv.index("--")
    args, given = Args(), {}
    options = argv[:split]
    if len(options) % 2:
        raise SystemExit(f"jupyter_env_manager launcher: an option lacks its value\n{USAGE}")
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag in OPTIONS:
            given[OPTIONS[flag]] = value
        elif flag == "--version":
            try:
                args.version = int(value)
            except ValueError:
                raise SystemExit(
                    f"jupyter_env_manager launcher: --version {value!r} is not a number"
                ) from None
        else:
            raise SystemExit(f"jupyter_env_manager launcher: unknown option {flag!r}\n{USAGE}")
    missing = [f for f, key in OPTIONS.items() if key not in given]
    if missing:
        raise SystemExit(f"jupyter_env_manager launcher: {', '.join(missing)} required\n{USAGE}")
    for key, value in given.items():
        setattr(args, key, value)
    return args, argv[split + 1 :]


def resolve(root: str, name: str) -> tuple[str, int | None]:
    """The directory of the version in use and its number (None for a prefix made by conda)."""
    usual = os.path.join(root, name)
    real = os.path.realpath(usual)
    if not os.path.isdir(real):
        raise SystemExit(
            f"jupyter_env_manager: the environment {name!r} is gone ({usual} does not exist): "
            "it was deleted; choose another kernel"
        )
    version = None
    try:
        import json

        with open(os.path.join(real, MARKER), encoding="utf-8") as f:
            version = json.load(f).get("version")
    except (OSError, ValueError, AttributeError):
        pass
    return real, version


def resolve_pinned(root: str, scope: str, name: str, version: int) -> str:
    """Version ``version``'s own directory, checked against the notebook this kernel is for
    (``JPY_SESSION_NAME``, when a Jupyter server starts it) and made again from its lock if
    retention removed it. Raises :class:`PinRefused` with the reason the notebook shows."""
    from pathlib import Path

    from ..config import EnvManager, load_config
    from .errors import EnvManagerError
    from .service import EnvService

    settings = EnvManager(config=load_config())
    if scope == "local":
        settings.local_root = root
    else:
        settings.shared_root = root
    service = EnvService(settings)
    pin: dict = {"scope": scope, "name": name, "version": version}
    notebook = os.environ.get("JPY_SESSION_NAME", "")
    if notebook.endswith(".ipynb"):
        try:
            import json

            meta = json.loads(Path(notebook).read_text(encoding="utf-8")).get("metadata", {})
            theirs = meta.get("envmgr") or {}
            if (theirs.get("scope", "local"), theirs.get("name"), theirs.get("version")) == (
                scope,
                name,
                version,
            ):
                pin["lock_sha256"] = theirs.get("lock_sha256")
        except (OSError, ValueError, AttributeError):
            pass  # not readable here: the kernelspec's version is checked all the same
    try:
        service.pins.resolve(pin)
        store = service.store(scope)
        return str(store.version_prefix(name, version, store.read_build(name, version).id))
    except EnvManagerError as err:
        raise PinRefused(err.message) from None


class PinRefused(Exception):
    """A pinned version cannot be started; the message says why."""


def error_kernel(command: list[str], message: str) -> None:
    """Start a kernel that answers every execution with ``message`` (the notebook shows why
    its pin cannot be honoured, instead of a kernel that dies or another environment)."""
    connection = command[command.index("-f") + 1] if "-f" in command else None
    argv = [sys.executable, "-m", "jupyter_env_manager.cli.error_kernel", "--message", message]
    if connection:
        argv += ["-f", connection]
    os.execv(sys.executable, argv)


def rewrite(values: list[str], old: str, new: str) -> list[str]:
    return [v.replace(old, new) if old in v else v for v in values]


def main(argv: list[str] | None = None) -> None:
    args, command = parse(sys.argv[1:] if argv is None else argv)
    if not command:
        raise SystemExit("jupyter_env_manager launcher: no kernel command")
    root = args.root
    version: int | None
    if args.version:
        try:
            real, version = resolve_pinned(root, args.scope, args.name, args.version), args.version
        except PinRefused as refused:
            error_kernel(command, str(refused))
            return
    else:
        real, version = resolve(root, args.name)
    built_for = os.path.normpath(args.built_for)
    env = dict(os.environ)
    if str(real) != built_for:  # the kernelspec was written for another version
        command = rewrite(command, built_for, str(real))
        env = {k: v.replace(built_for, str(real)) if built_for in v else v for k, v in env.items()}
    live_dir = os.path.join(root, ".envmgr", liveness.LIVE_DIR)
    record = None
    try:
        mode = os.stat(root).st_mode & 0o044 | 0o600
        record = liveness.register(
            live_dir,
            pid=os.getpid(),
            scope=args.scope,
            name=args.name,
            version=version,
            prefix=str(real),
            user=current_user(),
            mode=mode,
        )
    except OSError as err:
        print(
            f"jupyter_env_manager: warning: this kernel's liveness record could not be written "
            f"in {live_dir} ({err.strerror}): a rebuild elsewhere may remove its version's "
            "files while it runs",
            file=sys.stderr,
        )
    if record is not None:
        _fork_watcher(record, os.getpid())
    os.execvpe(command[0], command, env)


def _fork_watcher(record: str, pid: int) -> None:
    """A detached child (its own session: the kernel's interrupts are not its) that keeps the
    record fresh while the kernel runs, then removes it."""
    start = liveness.process_start(pid)
    child = os.fork()
    if child != 0:
        os.waitpid(child, 0)  # the middle child exits at once: no zombie under the kernel
        return
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 4096)  # the kernel's sockets and pipes are not ours
        liveness.watch(record, pid, start)
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
