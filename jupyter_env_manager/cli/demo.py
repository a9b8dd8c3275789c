"""``jupyter envmgr demo [DIR] [--configure]``: a first run that needs no conda channel.

Writes the tests' local conda channel (:mod:`jupyter_env_manager.testing.channel`: a ``python``
that is this machine's interpreter, ``ipykernel`` and ``pip`` collected from it, and small
packages) and wheelhouse (:mod:`jupyter_env_manager.testing.wheels`) into ``DIR``, with a
README saying what they are, and prints the ``c.EnvManager`` settings that point the extension
at them; ``--configure`` merges those settings into the user's ``jupyter_server_config.json``
(every other setting in it is kept).

Standard library at import time, like the rest of :mod:`.cli`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_DIR = "~/envmgr-demo"

README = """\
# jupyter_env_manager demo channel

Written by `jupyter envmgr demo`. Nothing here comes from the internet: every package was made
on this machine, so environments build with no network at all.

## channel/ (a conda channel, {channel_url})

| package | what it is |
|---|---|
| `python` {python} | this machine's interpreter ({interpreter}), venv-like: an isolated Python |
| `ipykernel`, `pip` | this machine's installed files (with ipykernel's dependencies) |
| `pytool` 1.0 | a Python module with a console script `pytool` |
| `alpha` 1.0 / 2.0, `beta` 1.0 | small data packages; alpha 2.0 depends on beta |
| `gamma` 1.0 | a script and a config file with the prefix written in at install time |
| `delta` 1.0 | activation scripts and `env_vars.d` variables (in a kernel's `os.environ`) |
| `badmod` 1.0 | a module whose import fails on purpose |
| `needs-missing` 1.0 | depends on a package no channel has: its build fails at solve |

## wheelhouse/ (wheels for the pip layer)

`envmgr-hello` 1.0 and 2.0 (a module and a console script), `envmgr-dep` 1.0, and
`envmgr-uses-dep` 1.0, which depends on `envmgr-dep`.

## Try it

    jupyter envmgr create demo --conda pytool --pip envmgr-hello --build

then open JupyterLab: the kernel "demo" is in the Launcher. Remove the `EnvManager` settings
below from your Jupyter configuration to go back to real channels.

## Settings

    {settings}
"""


def demo_settings(channel_url: str, wheelhouse: Path) -> dict[str, Any]:
    """The ``c.EnvManager`` settings that point the extension at the demo channel."""
    return {
        "channels": [channel_url],
        "pip_find_links": [str(wheelhouse)],
        "pip_no_index": True,
        "default_python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def as_python(settings: dict[str, Any]) -> str:
    return "\n".join(f"c.EnvManager.{k} = {v!r}" for k, v in settings.items())


def write_demo(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the channel, the wheelhouse and the README into ``directory``; its settings."""
    from ..testing.channel import build_channel, default_cache_dir, host_base_interpreter
    from ..testing.wheels import build_wheelhouse

    root = Path(directory).expanduser().absolute()
    root.mkdir(parents=True, exist_ok=True)
    url = build_channel(root / "channel", cache_dir=default_cache_dir())
    wheelhouse = build_wheelhouse(root / "wheelhouse")
    settings = demo_settings(url, wheelhouse)
    (root / "README.md").write_text(
        README.format(
            channel_url=url,
            python=settings["default_python"],
            interpreter=host_base_interpreter(),
            settings=as_python(settings).replace("\n", "\n    "),
        )
    )
    return {"directory": str(root), "settings": settings}


def configure(settings: dict[str, Any], config_dir: str | None = None) -> Path:
    """Merge ``settings`` into ``EnvManager`` of the user's ``jupyter_server_config.json``.

    Every other key is kept; a file that is not a JSON object is refused, never overwritten.
    """
    from jupyter_core.paths import jupyter_config_dir

    from ..core.errors import ValidationError

    path = Path(config_dir or jupyter_config_dir()) / "jupyter_server_config.json"
    data: Any = {}
    if path.exists():
        try:
            data = json.loads(path.read_text() or "{}")
        except (OSError, ValueError) as err:
            raise ValidationError(
                f"{path} is not readable JSON ({err}): fix it, or add the settings yourself",
                field="configure",
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("EnvManager", {}), dict):
            raise ValidationError(f"{path} is not a JSON object of sections", field="configure")
    data.setdefault("EnvManager", {}).update(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".jupyter_server_config.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    return path


def cmd_demo(service: Any, args: Any, progress: Any) -> Any:
    from .render import Result

    progress.start(f"writing the demo channel and wheelhouse into {args.directory}")
    done = write_demo(args.directory)
    python = as_python(done["settings"])
    if args.configure:
        path = configure(done["settings"])
        done["configured"] = str(path)
        message = (
            f"✓ demo channel in {done['directory']} (see its README.md); {path} now points "
            "the extension at it. Next: jupyter envmgr create demo --conda pytool "
            "--pip envmgr-hello --build"
        )
        return Result("message", done, message)
    text = (
        f"Demo channel and wheelhouse written to {done['directory']} (see its README.md).\n"
        "Add these lines to ~/.jupyter/jupyter_server_config.py (or run again with "
        "--configure):\n\n" + python
    )
    return Result("text", done, text=text)
