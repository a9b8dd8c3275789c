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
argv. Only the standard library and our light modules are imported here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import liveness
from .records import MARKER, current_user


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("jupyter_env_manager launcher: expected '-- <kernel command>'")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="jupyter_env_manager.core.launch")
    parser.add_argument("--root", required=True)
    parser.add_argument("--scope", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--built-for", required=True)
    parser.add_argument("--version", type=int, help="a pinned version (default: the one in use)")
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def resolve(root: Path, name: str) -> tuple[Path, int | None]:
    """The directory of the version in use and its number (None for a prefix made by conda)."""
    usual = root / name
    real = Path(os.path.realpath(usual))
    if not real.is_dir():
        raise SystemExit(
            f"jupyter_env_manager: the environment {name!r} is gone ({usual} does not exist): "
            "it was deleted; choose another kernel"
        )
    version = None
    try:
        import json

        version = json.loads((real / MARKER).read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        pass
    return real, version


def resolve_pinned(root: Path, scope: str, name: str, version: int) -> Path:
    """Version ``version``'s own directory, checked against the notebook this kernel is for
    (``JPY_SESSION_NAME``, when a Jupyter server starts it) and made again from its lock if
    retention removed it. Raises :class:`PinRefused` with the reason the notebook shows."""
    from ..config import EnvManager, load_config
    from .errors import EnvManagerError
    from .service import EnvService

    settings = EnvManager(config=load_config())
    if scope == "local":
        settings.local_root = str(root)
    else:
        settings.shared_root = str(root)
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
        return store.version_prefix(name, version, store.read_build(name, version).id)
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
    root = Path(args.root)
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
    live_dir = root / ".envmgr" / liveness.LIVE_DIR
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


def _fork_watcher(record: Path, pid: int) -> None:
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
