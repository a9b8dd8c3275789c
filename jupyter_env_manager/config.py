"""Configuration: the ``EnvManager`` traitlets section.

The same ``c.EnvManager.*`` settings are read by the server, the ``jupyter envmgr`` CLI and the
``%envmgr`` magics: :func:`load_config` reads the Jupyter server config files the way the server
does, so all three doors see one configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from jupyter_core.paths import jupyter_config_path
from traitlets import Bool, Enum, Float, Int, List, Unicode, default, validate
from traitlets.config import Config, LoggingConfigurable
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

SHARED_ROOT_ENV = "JUPYTER_ENV_MANAGER_SHARED_ROOT"


def read_condarc() -> dict[str, Any]:
    """The user's conda configuration (rattler does not read it), or ``{}``."""
    candidates = []
    if os.environ.get("CONDARC"):
        candidates.append(Path(os.environ["CONDARC"]))
    home = Path.home()
    candidates += [home / ".condarc", home / ".conda" / ".condarc", home / ".config/conda/.condarc"]
    for path in candidates:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            return data
    return {}


class EnvManager(LoggingConfigurable):
    """Settings of jupyter_env_manager, in ``c.EnvManager`` of the Jupyter server config."""

    local_root = Unicode(
        help=(
            "Directory of the local store: the user's own environments, one conda prefix per "
            "environment. Keep it on persistent storage (the home directory on JupyterHub)."
        ),
    ).tag(config=True)

    @default("local_root")
    def _default_local_root(self) -> str:
        return str(Path("~/.conda/envs").expanduser())

    shared_root = Unicode(
        None,
        allow_none=True,
        help=(
            "Directory of the team-wide shared store (typically on NFS/EFS). Defaults to the "
            f"environment variable {SHARED_ROOT_ENV}; None disables the shared store."
        ),
    ).tag(config=True)

    @default("shared_root")
    def _default_shared_root(self) -> str | None:
        return os.environ.get(SHARED_ROOT_ENV) or None

    channels = List(
        Unicode(),
        help=(
            "Conda channels used when a spec names none: names (resolved against conda-forge's "
            "host), URLs or file:// paths. Defaults to `channels` of ~/.condarc, else conda-forge."
        ),
    ).tag(config=True)

    @default("channels")
    def _default_channels(self) -> list[str]:
        channels = read_condarc().get("channels")
        if isinstance(channels, list) and channels:
            return [str(c) for c in channels if str(c) != "defaults"] or ["conda-forge"]
        return ["conda-forge"]

    pkgs_dir = Unicode(
        help=(
            "Package cache shared by all builds (downloads are extracted once, then hard-linked). "
            "Defaults to the first `pkgs_dirs` of ~/.condarc, else ~/.conda/pkgs."
        ),
    ).tag(config=True)

    @default("pkgs_dir")
    def _default_pkgs_dir(self) -> str:
        dirs = read_condarc().get("pkgs_dirs")
        if isinstance(dirs, list) and dirs:
            return str(Path(str(dirs[0])).expanduser())
        return str(Path("~/.conda/pkgs").expanduser())

    default_python = Unicode(
        "3.11",
        help="Python version given to new environments whose spec names neither python nor base.",
    ).tag(config=True)

    kernel_packages = List(
        Unicode(),
        default_value=["ipykernel"],
        help=(
            "Conda packages every environment gets so that its kernel can start. Each is checked "
            "by importing it (dashes read as underscores; ipykernel: the modules its kernel "
            "imports as it starts, ipykernel.kernelapp and ipykernel.ipkernel, whose byte-code "
            "the build compiles) before a build is put in use."
        ),
    ).tag(config=True)

    pip_index_url = Unicode(
        None,
        allow_none=True,
        help="Index URL for the pip layer (uv's --index-url). None: uv's default (PyPI).",
    ).tag(config=True)

    pip_find_links = List(
        Unicode(),
        help="Directories or URLs of wheels for the pip layer (uv's --find-links).",
    ).tag(config=True)

    pip_no_index = Bool(
        False,
        help="Install the pip layer only from pip_find_links, never from an index.",
    ).tag(config=True)

    pip_allow_direct_urls = Bool(
        False,
        help=(
            "Accept pip requirements that are direct references (`name @ https://...`, "
            "`name @ git+https://...`). They bypass pip_index_url and pip_no_index, so they are "
            "refused (a 400 naming the requirement) unless this is True."
        ),
    ).tag(config=True)

    max_concurrent_builds = Int(
        2,
        help="How many builds and copies run at once in this server; the rest wait in a queue.",
    ).tag(config=True)

    build_timeout_s = Int(
        3600,
        help="A build still running after this many seconds is stopped and marked failed.",
    ).tag(config=True)

    spare_worker = Bool(
        True,
        help=(
            "After its first build, keep one build worker started ahead of time (imports done, "
            "~35 MiB while it waits, no CPU) and hand it the next build: ~100 ms less per "
            "build. False starts a worker per build (for hubs short of memory)."
        ),
    ).tag(config=True)

    build_niceness = Int(
        10,
        help=(
            "CPU priority (nice increment) of build workers, so that a running build never slows "
            "the server or the kernels down; 0 keeps the server's priority. With Linux's "
            "autogroup scheduling the worker's session is lowered too (/proc/self/autogroup)."
        ),
    ).tag(config=True)

    verify_once = Bool(
        True,
        help=(
            "Verify a lock once: a build whose files python loads are those a build of the "
            "same lock already imported the kernel packages from (hard links of the package "
            "cache's files, unchanged) does not start its python to import them again. False "
            "starts it at every build."
        ),
    ).tag(config=True)

    watch_interval_s = Float(
        2.0,
        help=(
            "How often the server looks for changes made by other processes (the CLI, the "
            "magics, other servers on a shared store) to tell the panel; 0 disables it."
        ),
    ).tag(config=True)

    watch_quiet_rounds = Int(
        15,
        help=(
            "The watcher looks at an environment that did not change lately (no build, no "
            "change for a while) once in this many rounds, a slice of them each round, so a "
            "round's cost does not grow with thousands of environments: a change made by "
            "another process to such an environment is seen within watch_interval_s × "
            "watch_quiet_rounds (30 s by default). Environments created or deleted, building or "
            "changed lately are looked at every round."
        ),
    ).tag(config=True)

    cache_kernelspecs = Bool(
        True,
        help=(
            "Serve GET /api/kernelspecs from a cache that re-reads only the kernelspecs whose "
            "kernel.json or folder changed (by stat), instead of reading every kernel.json on "
            "every request (thousands with a large shared store). Only replaces jupyter_server's "
            "default KernelSpecManager; False keeps it."
        ),
    ).tag(config=True)

    keep_versions = Int(
        3,
        help=(
            "How many of an environment's newest versions keep their directory (the version in "
            "use and versions running kernels use are always kept); older ones are removed "
            "after builds and periodically. Specs, locks and logs of every version are kept."
        ),
    ).tag(config=True)

    kernel_stale_s = Float(
        86400.0,
        help=(
            "A running kernel's liveness record from another host that was not refreshed for "
            "this many seconds is taken as ended (its host died): the version it used may then "
            "be removed. Kernels refresh their record every 5 minutes."
        ),
    ).tag(config=True)

    pin_keep_s = Float(
        30 * 86400.0,
        help=(
            "A version a pinned notebook opened or ran within this many seconds keeps its "
            "directory (older pinned versions are made again from their lock when opened)."
        ),
    ).tag(config=True)

    retention_interval_s = Float(
        600.0,
        help=(
            "How often the server removes version directories nothing keeps (see "
            "keep_versions); 0 disables the periodic pass (builds still do it)."
        ),
    ).tag(config=True)

    @validate("keep_versions")
    def _validate_keep_versions(self, proposal):
        if proposal["value"] < 1:
            raise ValueError("keep_versions must be at least 1 (the version in use)")
        return proposal["value"]

    @validate("kernel_stale_s")
    def _validate_stale(self, proposal):
        if proposal["value"] < 900:
            raise ValueError("kernel_stale_s must be at least 900 (kernels refresh every 300 s)")
        return proposal["value"]

    offline = Bool(
        False,
        help=(
            "Build without network: solve from cached repodata and file:// channels only, "
            "install from the package cache, the pip layer only from pip_find_links. A build "
            "needing anything else fails before changing anything, naming what is missing. "
            "`--offline` (CLI, magics) and the build body's `offline` ask for it per build."
        ),
    ).tag(config=True)

    max_bundle_mb = Int(
        4096,
        help=(
            "Largest bundle (MiB) the REST upload `POST /env-manager/bundles` accepts; a larger "
            "one gets 413 before it is stored. The CLI's `import NAME.tar` has no limit."
        ),
    ).tag(config=True)

    # -- publishing with approval (core/publishing.py) ----------------------------------------

    publish_policy = Enum(
        ["direct", "approval"],
        None,
        allow_none=True,
        help=(
            "How environments reach the shared store. 'direct': copy-to-shared as anyone whose "
            "file permissions allow it. 'approval': a user who is not an approver submits a "
            "request that an approver reviews and publishes (copy-to-shared answers 403 naming "
            "that route). None (default): 'direct' for approvers, 'approval' for everyone else."
        ),
    ).tag(config=True)

    approvers = List(
        Unicode(),
        help=(
            "Who may approve publish requests, among those who can write the shared root: user "
            "names and '@group' names (JupyterHub groups from the server's identity, else Unix "
            "groups). Empty: everyone who can write the shared root. The filesystem still "
            "decides who can publish; this only narrows it."
        ),
    ).tag(config=True)

    requests_root = Unicode(
        None,
        allow_none=True,
        help=(
            "The inbox of publish requests, writable by every team member and sticky (like "
            "/tmp): one directory per request. Default: <shared_root>/.envmgr/requests."
        ),
    ).tag(config=True)

    allowed_channels = List(
        Unicode(),
        help=(
            "Channels a published environment may take conda packages from (names or URLs). "
            "A request with packages from other channels is flagged. Empty: any channel."
        ),
    ).tag(config=True)

    blocked_packages = List(
        Unicode(),
        help=(
            "Conda match specs (e.g. 'openssl<3', 'pycrypto') that a published environment "
            "may not contain; a bare name also matches a pip distribution. Flagged on review."
        ),
    ).tag(config=True)

    enforce_policy = Bool(
        False,
        help=(
            "Refuse to approve a request that fails a policy check (allowed_channels, "
            "blocked_packages, pip direct URLs or local paths) instead of flagging it."
        ),
    ).tag(config=True)

    @validate("max_concurrent_builds")
    def _validate_max_builds(self, proposal):
        value = proposal["value"]
        if value < 1:
            raise ValueError("max_concurrent_builds must be at least 1")
        return value

    @validate("local_root", "shared_root", "pkgs_dir", "requests_root")
    def _expand_path(self, proposal):
        value = proposal["value"]
        return None if value is None else str(Path(value).expanduser().absolute())


def load_config(config_dirs: list[str] | None = None) -> Config:
    """Read ``jupyter_server_config.{json,py}`` (and its ``.d`` drop-ins) as the server would.

    Used by the CLI and the magics, which do not run inside the server but must follow the same
    ``c.EnvManager`` settings.
    """
    config = Config()
    for directory in config_dirs if config_dirs is not None else jupyter_config_path()[::-1]:
        drop_ins = Path(directory) / "jupyter_server_config.d"
        if drop_ins.is_dir():
            for path in sorted(drop_ins.glob("*.json")):
                config.merge(JSONFileConfigLoader(path.name, str(path.parent)).load_config())
        for loader_class, suffix in ((JSONFileConfigLoader, ".json"), (PyFileConfigLoader, ".py")):
            path = Path(directory) / f"jupyter_server_config{suffix}"
            if path.is_file():
                config.merge(loader_class(path.name, str(path.parent)).load_config())
    return config
