"""``%envmgr``: the IPython door (``%load_ext jupyter_env_manager``).

The same commands as ``jupyter envmgr`` (one parser, one dispatch: :mod:`.cli`), rendered for
IPython: HTML tables in notebooks (plain text in a terminal), a live progress display for
builds, one ``envmgr: <message>`` line on stderr for errors.

Where the core runs: in this process when it can (a kernel or IPython of the Python that has
jupyter_env_manager and its dependencies). A kernel of a managed environment usually cannot,
and must not, since a build replaces the environment it runs in: its kernelspec names the
manager's Python (``JUPYTER_ENV_MANAGER_PYTHON``), and the magic runs
``<that python> -m jupyter_env_manager.cli --stream ...``, reading progress and the result as
JSON lines. Either way ``install``/``uninstall`` then refresh this kernel's import caches, so
new packages import without a restart, and say which changed packages need one.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from .commands import Progress, TextProgress
from .parser import HelpShown, UsageError, build_parser, help_text
from .render import Result, render_html, render_text

PROG = "%envmgr"
MANAGER_PYTHON_ENV = "JUPYTER_ENV_MANAGER_PYTHON"
# A pin (or unpin) the frontend applies to the notebook that shows it (see src/pins.ts).
PIN_MIME = "application/vnd.jupyter-env-manager.pin+json"
LOG_TAIL = 15


class MagicError(Exception):
    """Shown as one line, ``envmgr: <message>``."""


@magics_class
class EnvManagerMagics(Magics):
    """``%envmgr COMMAND ...``; ``%envmgr help`` lists the commands."""

    @line_magic
    def envmgr(self, line: str) -> None:
        """Manage conda environments: ``%envmgr help`` lists the commands."""
        try:
            self._run(line)
        except MagicError as err:
            print(f"envmgr: {err}", file=sys.stderr, flush=True)

    def _run(self, line: str) -> None:
        parser = build_parser(PROG)
        try:
            argv = shlex.split(line)
            args = parser.parse_args(argv)
            if args.command in (None, "help"):
                print(help_text(parser, getattr(args, "topic", None)), end="")
                return
        except HelpShown:
            return
        except UsageError as err:
            see = f" (see '{err.prog} --help')" if err.prog and err.prog != PROG else ""
            raise MagicError(err.message + see) from None
        except ValueError as err:  # shlex: unbalanced quotes
            raise MagicError(str(err)) from None
        before = None
        if args.command in ("pin", "unpin") and not args.notebook and not args.prefix:
            args.prefix = sys.prefix  # this notebook: the frontend applies the answer
            argv += ["--prefix", sys.prefix]
        if args.command in ("install", "uninstall") and not getattr(args, "all", False):
            if not args.env and not args.prefix:  # this kernel's environment
                args.prefix = sys.prefix
                argv += ["--prefix", sys.prefix]
            before = Snapshot.take(current_prefix())
        if args.json:
            progress = Progress()
        elif getattr(self.shell, "kernel", None) is not None:
            progress = NotebookProgress()
        else:
            progress = TextProgress()
        result = core_runner().run(args, argv, progress)
        # A build's ✓/✗ line is already the last line of the notebook's progress display.
        shown = isinstance(progress, NotebookProgress) and progress.outcome is not None
        show(result, args.json, message=not shown)
        if before is not None and result.ok:
            prefix = os.path.realpath(result.data["environment"]["prefix"])
            here = os.path.realpath(current_prefix())
            # This kernel's environment: the same directory, or a sibling version directory.
            if prefix == here or (
                os.path.dirname(prefix) == os.path.dirname(here)
                and os.path.basename(os.path.dirname(os.path.dirname(here))) == "prefixes"
            ):
                for note in refresh_kernel(before, prefix):
                    print(note)


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(EnvManagerMagics)


# -- where the core runs -------------------------------------------------------------------------


class InProcess:
    """The core in this Python."""

    def run(self, args, argv: list[str], progress: Progress) -> Result:
        from ..core.errors import EnvManagerError
        from .commands import dispatch, make_service

        try:
            return dispatch(make_service(progress), args, progress)
        except (EnvManagerError, UsageError) as err:
            raise MagicError(err.message) from None


class Delegated:
    """The core in the manager's Python, through ``jupyter envmgr --stream``."""

    def __init__(self, command: list[str]):
        self.command = command

    def run(self, args, argv: list[str], progress: Progress) -> Result:
        result, error = None, None

        def handle(line: str) -> None:
            nonlocal result, error
            try:
                msg = json.loads(line)
            except ValueError:
                return
            if "log" in msg:
                progress.log(msg["log"])
            elif "event" in msg:
                progress.event(msg["event"])
            elif "start" in msg:
                progress.start(msg["start"])
            elif "finish" in msg:
                progress.finish(Result.from_dict(msg["finish"]))
            elif "result" in msg:
                result = Result.from_dict(msg["result"])
            elif "error" in msg:
                error = msg["error"].get("message") or "failed"

        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                [*self.command, "--stream", *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            interrupted = False
            while True:
                try:
                    for line in proc.stdout or ():
                        handle(line)
                    break
                except KeyboardInterrupt:  # first Ctrl-C cancels the build, the second kills
                    if interrupted:
                        proc.kill()
                        raise
                    interrupted = True
                    proc.send_signal(signal.SIGINT)
            proc.wait()
            err.seek(0)
            stderr = err.read().strip()
        if error is not None:
            raise MagicError(error)
        if result is None:
            last = stderr.splitlines()[-1] if stderr else f"exit code {proc.returncode}"
            raise MagicError(f"the environment manager ({self.command[0]}) failed: {last}")
        return result


def core_runner() -> InProcess | Delegated:
    """Run the core here, or in the manager's Python named by this kernel's kernelspec."""
    python = os.environ.get(MANAGER_PYTHON_ENV)
    # Compare paths, not files: an environment's python may be a link to the same binary.
    if (
        python
        and os.path.isfile(python)
        and os.path.abspath(python) != os.path.abspath(sys.executable)
    ):
        return Delegated([python, "-m", "jupyter_env_manager.cli"])
    try:
        import rattler  # noqa: F401

        from ..core import service  # noqa: F401
    except ImportError:
        command = shutil.which("jupyter-envmgr")
        if command:
            return Delegated([command])
        raise MagicError(
            "the environment manager cannot run in this Python (its dependencies are missing) "
            "and no jupyter-envmgr command was found on PATH"
        ) from None
    return InProcess()


# -- showing results -----------------------------------------------------------------------------


def show(result: Result, as_json: bool, message: bool = True) -> None:
    if as_json:
        print(json.dumps(result.data, indent=1))
        return
    if result.kind == "text":
        print((result.text or "").rstrip("\n"))
        return
    if result.kind == "pin":  # the frontend sets the notebook's metadata and kernel from it
        display({PIN_MIME: result.data, "text/plain": result.message}, raw=True)
        return
    rich = render_html(result)
    if rich:
        plain = render_text(Result(result.kind, result.data))
        display({"text/plain": plain, "text/html": rich}, raw=True)
    if result.message and message:
        print(result.message, file=sys.stdout if result.ok else sys.stderr, flush=True)


class NotebookProgress(Progress):
    """One display, updated in place: the phases so far and the last lines of the log."""

    def __init__(self, interval_s: float = 0.25):
        self.title = ""
        self.phases: list[str] = []
        self.lines: deque[str] = deque(maxlen=LOG_TAIL)
        self.outcome: Result | None = None
        self.handle = None
        self.interval_s = interval_s
        self._shown = 0.0

    def start(self, title: str) -> None:
        self.title = title
        self.handle = display(self._bundle(), raw=True, display_id=True)
        self._shown = time.monotonic()

    def log(self, line: str) -> None:
        self.lines.append(line)
        if time.monotonic() - self._shown >= self.interval_s:
            self._update()

    def event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "phase" and event.get("phase"):
            self.phases.append(event["phase"])
            self._update()

    def finish(self, result: Result) -> None:
        self.outcome = result
        self._update()

    def _update(self) -> None:
        if self.handle is not None:
            self.handle.update(self._bundle(), raw=True)
        self._shown = time.monotonic()

    def _phase_marks(self) -> list[tuple[str, str]]:
        marks = []
        for i, phase in enumerate(self.phases):
            last = i == len(self.phases) - 1
            if not last:
                marks.append((phase, "✓"))
            elif self.outcome is None:
                marks.append((phase, "…"))
            else:
                marks.append((phase, "✓" if self.outcome.ok else "✗"))
        return marks

    def _bundle(self) -> dict[str, str]:
        e = html.escape
        marks = self._phase_marks()
        state = self.outcome.message if self.outcome else ""
        plain = "\n".join(
            [self.title, " → ".join(f"{p} {m}" for p, m in marks), *self.lines, state]
        )
        colour = ""
        if self.outcome is not None:
            colour = "var(--jp-success-color1)" if self.outcome.ok else "var(--jp-error-color1)"
        phases = " → ".join((f"<b>{e(p)} {m}</b>" if m == "…" else f"{e(p)} {m}") for p, m in marks)
        tail = e("\n".join(self.lines))
        rich = (
            '<div class="jp-EnvManager-progress">'
            f"<div><b>{e(self.title)}</b> {phases}</div>"
            f'<pre style="max-height:20em;overflow:auto;font-size:85%">{tail}</pre>'
            + (f'<div style="color:{colour}"><b>{e(state)}</b></div>' if state else "")
            + "</div>"
        )
        return {"text/plain": plain, "text/html": rich}


# -- refreshing this kernel after install/uninstall ----------------------------------------------


@dataclass
class Snapshot:
    """The packages of a prefix, and which of them this process has imported modules from."""

    prefix: str
    versions: dict[str, str]
    imported: dict[str, set[str]] = field(default_factory=dict)
    pth: set[str] = field(default_factory=set)

    @classmethod
    def take(cls, prefix: str) -> Snapshot | None:
        if not os.path.isdir(os.path.join(prefix, "conda-meta")):
            return None
        modules: dict[str, str] = {}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.startswith(prefix + os.sep):
                modules[os.path.normpath(path)] = name.partition(".")[0]
        snap = cls(prefix, package_versions(prefix), pth=_pth_files(prefix))
        for key, files in _package_files(prefix):
            hit = {modules[f] for f in files if f in modules}
            if hit:
                snap.imported[key] = hit
        return snap


def _site_dirs(prefix: str) -> list[str]:
    lib = os.path.join(prefix, "lib")
    try:
        names = sorted(n for n in os.listdir(lib) if n.startswith("python"))
    except OSError:
        return []
    return [os.path.join(lib, n, "site-packages") for n in names]


def _dist_infos(prefix: str):
    for site_dir in _site_dirs(prefix):
        try:
            entries = os.listdir(site_dir)
        except OSError:
            continue
        for entry in entries:
            if entry.endswith(".dist-info"):
                name, _, version = entry[: -len(".dist-info")].partition("-")
                yield site_dir, entry, name.replace("_", "-").lower(), version


def package_versions(prefix: str) -> dict[str, str]:
    """``{"conda:NAME": "VERSION-BUILD", "pip:NAME": "VERSION"}`` from file names only (fast)."""
    out = {}
    try:
        records = os.listdir(os.path.join(prefix, "conda-meta"))
    except OSError:
        records = []
    for record in records:
        if record.endswith(".json") and record.count("-") >= 2:
            name, version, build = record[: -len(".json")].rsplit("-", 2)
            out[f"conda:{name}"] = f"{version}-{build}"
    for _site, _entry, name, version in _dist_infos(prefix):
        out[f"pip:{name}"] = version
    return out


def _package_files(prefix: str):
    """(key, absolute file paths) of each conda record and each installed distribution."""
    meta = os.path.join(prefix, "conda-meta")
    for record in os.listdir(meta):
        if not record.endswith(".json") or record.count("-") < 2:
            continue
        try:
            with open(os.path.join(meta, record)) as f:
                files = json.load(f).get("files", [])
        except (OSError, ValueError):
            continue
        name = record[: -len(".json")].rsplit("-", 2)[0]
        yield f"conda:{name}", {os.path.normpath(os.path.join(prefix, p)) for p in files}
    for site_dir, entry, name, _version in _dist_infos(prefix):
        try:
            with open(os.path.join(site_dir, entry, "RECORD")) as f:
                rows = [line.split(",")[0] for line in f if line.strip()]
        except OSError:
            continue
        yield f"pip:{name}", {os.path.normpath(os.path.join(site_dir, p)) for p in rows}


def _pth_files(prefix: str) -> set[str]:
    out = set()
    for site_dir in _site_dirs(prefix):
        try:
            out |= {os.path.join(site_dir, n) for n in os.listdir(site_dir) if n.endswith(".pth")}
        except OSError:
            continue
    return out


def current_prefix() -> str:
    """Where this kernel imports from: its version's directory, or the one a ``%envmgr
    install`` of its own moved it to (``CONDA_PREFIX`` follows it)."""
    conda = os.environ.get("CONDA_PREFIX")
    if conda and os.path.isdir(os.path.join(conda, "conda-meta")):
        return conda
    return sys.prefix


def refresh_kernel(before: Snapshot, new_prefix: str | None = None) -> list[str]:
    """Make new packages importable here; say which imported packages need a restart.

    ``new_prefix``: the new version's own directory, when this kernel's environment was
    rebuilt by this kernel's own ``%envmgr install`` (each version has its directory): its
    later imports and commands come from there (what the user asked for here), while the
    modules it has imported stay, and are named for a restart. Its liveness record still
    names the version it started on, so that directory is kept while it runs."""
    importlib.invalidate_caches()
    prefix = new_prefix or before.prefix
    if new_prefix and new_prefix != before.prefix:
        old = before.prefix.rstrip(os.sep) + os.sep
        sys.path[:] = [p for p in sys.path if not (p + os.sep).startswith(old)]
        for key in ("PATH", "CONDA_PREFIX"):
            if key in os.environ:
                os.environ[key] = os.environ[key].replace(before.prefix, new_prefix)
    for site_dir in _site_dirs(prefix):
        if os.path.isdir(site_dir) and site_dir not in sys.path:
            site.addsitedir(site_dir)
    seen = {os.path.basename(p) for p in before.pth}
    for pth in sorted(p for p in _pth_files(prefix) if os.path.basename(p) not in seen):
        site.addpackage(os.path.dirname(pth), os.path.basename(pth), None)
    after = package_versions(prefix)

    def label(key: str) -> str:
        return key.partition(":")[2]

    restart = sorted({label(k) for k in before.imported if after.get(k) != before.versions[k]})
    ready = sorted(
        {
            f"{label(k)} {v.rsplit('-', 1)[0] if k.startswith('conda:') else v}"
            for k, v in after.items()
            if before.versions.get(k) != v and k not in before.imported
        }
    )
    notes = []
    if ready:
        notes.append("Ready to import in this kernel: " + ", ".join(ready))
    if restart:
        notes.append("Restart the kernel to use the new versions of: " + ", ".join(restart))
    return notes
