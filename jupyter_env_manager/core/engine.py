"""Solve, install, pip layer, verify and swap: one build of one environment.

Everything here runs inside the build worker process (see :mod:`.worker`), never in the server:
rattler's solver and installer run in-process there, uv runs as a child of the worker.

A build assembles a complete prefix in ``<root>/.envmgr/staging/<name>.v<N>`` with every
relocatable path written for the version's own directory, ``<root>/.envmgr/prefixes/<name>/
v<N>-<id>`` (rattler's ``alternative_target_prefix``; uv's scripts are rewritten), checks that
its python imports the kernel packages, and only then swaps it in (:meth:`Store.swap_in`: the
staging directory becomes the version's directory, then ``<root>/<name>`` is switched to it).
Until that switch, the version in use is untouched; the switch is the build's commit point:
what follows it (conda's environments.txt, the kernelspec, removing old versions) is best
effort, logged as a warning on failure, and never turns a committed build into a failed one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

from . import bytecode, verified
from .access import restrict_tree, user_umask
from .buildjob import BuildJob, BuildLog, Reporter
from .conda_registry import register_conda_env
from .diagnose import (
    channel_base_url,
    channel_error,
    has_credentials,
    make_gateway,
    missing_offline,
    rattler_client,
    redact,
    redact_prefix_records,
    restore_credentials,
    scrub_job_file,
)
from .errors import BuildFailed
from .lockfile import lock_records, pip_distributions, read_lock, site_packages, write_locks
from .pkgcache import CacheChoice, choose, with_offline_packages
from .spec import EnvSpec, python_match_spec, solver_spec
from .store import MARKER, Store, pause_point
from .wheels import annotate, import_wheels, private_requirements, wheels_dir

PHASES = ("solve", "download", "link", "pip", "verify", "kernel")


def requested_match_specs(specs: list[str]) -> list[Any] | None:
    """What was asked for, recorded in conda-meta as conda does (``--from-history`` uses it).

    py-rattler 0.28's ``install(requested_specs=...)`` rejects its own ``MatchSpec`` objects
    (a wrapper bug); the inner object it wants is ``MatchSpec._match_spec``. This is the one
    place that knows.
    """
    from rattler import MatchSpec

    if not specs:
        return None
    return [MatchSpec(s)._match_spec for s in specs]


def readable_records(prefix: Path) -> None:
    """rattler writes conda-meta records 0600; give them the umask's mode (shared stores)."""
    mask = os.umask(0)
    os.umask(mask)
    mode = 0o666 & ~mask
    for path in (prefix / "conda-meta").glob("*.json"):
        os.chmod(path, mode)


class Builder:
    """Runs one :class:`BuildJob` to the end (or raises)."""

    def __init__(self, job: BuildJob, log: BuildLog, client: Any = None):
        self.job = job
        self.log = log
        self.store = Store(job.root, job.scope)
        self.staging = self.store.staging_dir(job.name, job.version)
        self.build_dir = self.store.build_dir(job.name, job.version)
        self.spec = EnvSpec.from_dict(job.spec)
        self.channels = self.spec.channels or job.channels
        self.wheels = wheels_dir(self.store.env_dir(job.name))  # private wheels (wheels.py)
        self.child: subprocess.Popen | None = None
        self.build_id = ""  # the worker sets it: the swap checks it is still this build
        self.committed = False  # the new prefix is in use: the build has succeeded
        self._client: Any = client  # a spare worker's, made while it waited (spare.py)
        self._cache: CacheChoice | None = None
        self._bytecode: list[bytecode.Package] = []  # the prefix's packages (share_bytecode)

    @property
    def client(self) -> Any:
        """The build's one rattler HTTP client, for its solve and its install."""
        if self._client is None:
            self._client = rattler_client()
        return self._client

    @property
    def final(self) -> Path:
        """The version's own directory: where its files are linked for, and live while kept."""
        return self.store.version_prefix(self.job.name, self.job.version, self.build_id)

    # -- phases ------------------------------------------------------------------------------

    async def run(self) -> None:
        job = self.job
        scrub_job_file(self.build_dir / "job.json")  # the worker holds the job: no secret stays
        self.store.remove_tree(self.staging)
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        (self.build_dir / "spec.json").write_text(json.dumps(job.spec, indent=1))
        self.log.set_phase("solve")
        pip_pins: list[str] = []
        requested: list[str] = []
        if job.kind in ("revert", "copy"):
            source = Path(job.source_build_dir or "")
            self.log.write(f"reproducing the lock of {source.parent.parent.name} v{source.name}")
            records = lock_records(source)
            restore_credentials(records, job.channels + self.spec.channels)
            if job.offline:
                self.check_offline(records)
            pip_pins = [f"{d['name']}=={d['version']}" for d in read_lock(source)["pip"]]
            pip_reqs: list[str] = []
            apply = self.store.access.apply if self.store.access is not None else None
            for wheel in import_wheels(source.parents[1] / "wheels", self.wheels, apply):
                self.log.write(f"private wheel {wheel} copied from {source.parents[1].name}")
        else:
            records, requested = await self.solve()
            pip_reqs = private_requirements(self.spec.pip, self.spec.wheels, self.wheels)
            if job.base_build_dir:
                base_pip = read_lock(Path(job.base_build_dir))["pip"]
                pip_pins = [f"{d['name']}=={d['version']}" for d in base_pip]
        await self.install(records, requested)
        pip = annotate(await self.pip_layer_seeding(pip_reqs, pip_pins), self.wheels)
        write_variables(self.staging, self.spec.variables, self.log)
        await self.verify_and_set_modes(records, pip)
        write_locks(self.build_dir, records, pip, self.channels)
        pause_point("before-swap")
        if self.store.cancel_requested(job.name, job.version):
            raise asyncio.CancelledError  # asked for by a process that does not own us
        # The spec this build records (revert: version N's; install/uninstall: the edited one)
        # becomes the environment's in the same step as the swap, so that the next build, an
        # export and the panel all agree with what is in use.
        spec = self.spec.to_dict() if job.record_spec else None
        summary = {"pip_count": len(pip)}
        self.store.swap_in(job.name, self.staging, self.build_id, job.version, summary, spec)
        self.committed = True
        self.log.write(
            f"version {job.version} is in use at {self.store.prefix(job.name)} ({self.final})"
        )
        if spec is not None and job.kind == "revert":
            self.log.write(
                f"spec restored to that of version {Path(job.source_build_dir or '').name}"
            )
        elif spec is not None:
            self.log.write("spec recorded: " + ", ".join(self.spec.conda + self.spec.pip))
        pause_point("after-swap")
        self.after_commit()
        self.collect()

    def after_commit(self) -> None:
        """Best effort once the build is in use: a failure is a warning in the log."""
        job = self.job
        try:
            register_conda_env(self.store.prefix(job.name))
        except Exception as err:
            self.log.write(f"warning: could not list the prefix in environments.txt: {err}")
        self.log.set_phase("kernel")
        if not job.write_kernel:
            self.log.write("kernel not registered (deactivated)")
            return
        from .errors import KernelError
        from .kernels import write_kernelspec

        try:
            kname = write_kernelspec(
                job.scope,
                job.name,
                self.final,
                self.spec.display_name or job.name,
                job.version,
                self.store.root,
            )
            self.log.write(f"kernel {kname} registered")
        except KernelError as err:  # the version is in use: the build did succeed
            self.log.write(f"warning: {err.message}")
        except Exception as err:
            self.log.write(f"warning: the kernelspec could not be written: {err}")

    async def materialize(self) -> Path:
        """Make version ``job.version``'s own directory again from its lock (kind
        ``materialize``: no solve, no new version, nothing switched): for a pinned notebook
        whose version retention removed. Returns the directory."""
        job = self.job
        source = Path(job.source_build_dir or "")
        records = lock_records(source)
        restore_credentials(records, job.channels + self.spec.channels)
        if job.offline:
            self.check_offline(records)
        pip_pins = [f"{d['name']}=={d['version']}" for d in read_lock(source)["pip"]]
        self.log.write(f"materializing {job.name} v{job.version} from its lock: {self.final}")
        self.store.remove_tree(self.staging)
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self.install(records, [])
            pip = await self.pip_layer_seeding([], pip_pins)
            await self.verify_and_set_modes(records, pip)
            (self.staging / MARKER).write_text(
                json.dumps({"version": job.version, "build_id": self.build_id})
            )
            return self.store.place_version(job.name, self.staging, job.version, self.build_id)
        finally:
            self.store.remove_tree(self.staging)

    def collect(self) -> None:
        """Remove version directories nothing keeps any more (best effort, logged)."""
        from .retention import collect

        job = self.job
        try:
            done = collect(
                self.store,
                job.name,
                keep_versions=job.keep_versions,
                stale_s=job.kernel_stale_s,
                pin_keep_s=job.pin_keep_s,
            )
        except Exception as err:
            self.log.write(f"warning: old versions' directories were not cleaned up: {err}")
            return
        for key, names in done.removed.items():
            self.log.write(f"removed the directories of {key.split('/')[-1]} {', '.join(names)}")
        for names in done.kept_for_kernels.values():
            self.log.write(f"kept {', '.join(names)}: running kernels use them")

    async def solve(self) -> tuple[list[Any], list[str]]:
        from rattler import Platform, solve

        job = self.job
        specs: list[str] = []
        locked: list[Any] = []
        if job.base_build_dir:
            base = EnvSpec.from_dict(job.base_spec or {})
            specs.append(python_match_spec(base.python or job.default_python))
            specs += [solver_spec(c) for c in base.conda]
            locked = lock_records(Path(job.base_build_dir))
            self.log.write(f"starting from base environment {self.spec.base}")
        else:
            specs.append(python_match_spec(self.spec.python or job.default_python))
        specs += [p for p in job.kernel_packages if p not in specs]
        specs += [solver_spec(c) for c in self.spec.conda]
        self.log.write("specs: " + ", ".join(specs))
        self.log.write("channels: " + ", ".join(redact(c) for c in self.channels))
        if job.offline:
            self.log.write("offline: cached repodata and file:// channels, the package cache")
        gateway = make_gateway(job.pkgs_dir, job.offline, self.client)
        started = time.monotonic()
        try:
            records = await solve(
                sources=self.channels,
                specs=specs,
                gateway=gateway,
                platforms=[Platform.current(), Platform("noarch")],
                locked_packages=locked or None,
            )
        except Exception as err:
            message = channel_error(
                err, self.channels, "Could not solve the environment", job.offline, lead=False
            )
            raise BuildFailed(message) from None
        self.log.write(f"solved {len(records)} packages in {time.monotonic() - started:.2f}s")
        for r in sorted(records, key=lambda r: r.name.normalized):
            self.log.write(f"  {r.name.normalized} {r.version} {r.build}")
        if job.offline:
            self.check_offline(records)
        return records, specs

    def package_cache(self, records: list[Any]) -> CacheChoice:
        """The package cache this build links from (see :mod:`.pkgcache`), chosen once and
        said in the log: a shared store links from one on its own filesystem where it can."""
        if self._cache is None:
            choice = choose(self.store, self.job.pkgs_dir)
            local = Path(self.job.pkgs_dir)
            if self.job.offline and choice.conda != local:
                missing = missing_offline(records, choice.conda)
                if missing and not missing_offline(records, local):
                    choice = with_offline_packages(choice, local, missing)
            if self.store.scope == "shared":
                self.log.write(choice.note)
            self._cache = choice
        return self._cache

    def check_offline(self, records: list[Any]) -> None:
        """Offline: every package must be in the package cache or on disk, before anything."""
        cache = self.package_cache(records).conda
        missing = missing_offline(records, cache)
        if missing:
            raise BuildFailed(
                f"Offline, and {len(missing)} packages are neither in the package cache "
                f"({cache}) nor in a file:// channel: {', '.join(missing)}. Build "
                "once with network, import a bundle that has them, or add a file:// channel."
            )
        if self.spec.pip and not self.job.pip_find_links:
            raise BuildFailed(
                f"Offline, and the pip layer ({', '.join(self.spec.pip)}) has no source: set "
                "c.EnvManager.pip_find_links to a directory of wheels"
            )

    async def install(self, records: list[Any], requested: list[str]) -> None:
        from rattler import install

        cache = self.package_cache(records)
        self.log.set_phase("download")
        reporter = Reporter(self.log)
        try:
            await install(
                records,
                target_prefix=self.staging,
                cache_dir=cache.conda,
                installed_packages=[],
                show_progress=False,
                reporter=reporter,  # type: ignore[arg-type]  # the protocol, via __getattr__
                alternative_target_prefix=self.final,
                requested_specs=requested_match_specs(requested),
                client=self.client,
            )
        except Exception as err:
            message = channel_error(
                err, self.channels, "Could not install the packages", self.job.offline, lead=False
            )
            raise BuildFailed(message) from None
        self.log.set_phase("link")
        if any(has_credentials(channel_base_url(c)) for c in self.channels):
            redact_prefix_records(self.staging)
        readable_records(self.staging)
        self.log.write(f"linked {len(records)} packages")

    async def pip_layer_seeding(self, reqs: list[str], pins: list[str]) -> list[dict[str, str]]:
        """The pip layer, while a thread links the byte-code earlier builds compiled for these
        packages into the prefix (see :mod:`.bytecode`)."""
        seeding = asyncio.create_task(asyncio.to_thread(self.share_bytecode, "seed"))
        try:
            return await self.pip_layer(reqs, pins)
        finally:
            await seeding

    def share_bytecode(self, step: str) -> None:
        """``seed`` the prefix with the byte-code earlier builds kept (before verify), or
        ``keep`` what this one compiled (after it): see :mod:`.bytecode`. A failure is a line
        in the log, never the build's."""
        try:
            if step == "seed":
                self._bytecode = bytecode.packages(self.staging)
                done = bytecode.seed(self.staging, self._bytecode)
            else:
                done = bytecode.keep(self.staging, self._bytecode)
        except OSError as err:
            not_done = "linked" if step == "seed" else "kept"
            self.log.write(f"warning: byte-code not {not_done}: {err}")
            return
        if done:
            what = "linked from the package cache's" if step == "seed" else "compiled here kept"
            self.log.write(f"byte-code: {done} .pyc files {what}")

    async def pip_layer(self, reqs: list[str], pins: list[str]) -> list[dict[str, str]]:
        if not reqs and not pins:
            return []
        self.log.set_phase("pip")
        python = self.staging / "bin" / "python"
        from uv import find_uv_bin

        base = [find_uv_bin(), "pip", "install", "--no-config", "--python", str(python)]
        uv_cache = self._cache.uv if self._cache is not None else None
        if uv_cache is not None:  # on the shared store's filesystem: uv hard-links from it
            base += ["--cache-dir", str(uv_cache)]
        if self.job.pip_index_url and not self.job.offline:
            base += ["--index-url", self.job.pip_index_url]
        for link in self.job.pip_find_links:
            base += ["--find-links", link]
        if self.job.pip_no_index or self.job.offline:
            base.append("--no-index")
        if self.job.offline:
            base.append("--offline")
        if self.wheels.is_dir():  # this environment's private wheels (a revert's, a copy's pins)
            base += ["--find-links", str(self.wheels)]
        if pins:
            # The locked layer first, exactly, without resolving anything new.
            await self.run_logged([*base, "--no-deps", "--", *pins], "pip")
        if reqs:
            extra: list[str] = []
            if pins:  # keep the base environment's pip layer where it is
                constraints = self.staging / ".envmgr-pip-constraints.txt"
                constraints.write_text("\n".join(pins) + "\n")
                extra = ["--constraint", str(constraints)]
            await self.run_logged([*base, *extra, "--", *reqs], "pip")
            if extra:
                constraints.unlink()
        self.relocate_pip_files()
        dists = pip_distributions(self.staging)
        self.log.write(f"pip layer: {len(dists)} distributions")
        return dists

    def relocate_pip_files(self) -> None:
        """uv wrote the staging path into scripts; point them at the final prefix.

        Only files uv wrote are read: one it hard-linked from its cache (more than one link)
        has the cache's bytes, which name no prefix (a rewrite replaces, never edits, a file).
        """
        old, new = str(self.staging).encode(), str(self.final).encode()
        candidates = [p for p in (self.staging / "bin").iterdir() if p.is_file()]
        sp = site_packages(self.staging)
        if sp is not None:
            for record in sp.glob("*.dist-info/RECORD"):
                for line in record.read_text(errors="replace").splitlines():
                    rel = line.rsplit(",", 2)[0]
                    if rel.endswith((".py", ".pth", ".txt", ".json", ".cfg")) or "/bin/" in rel:
                        candidates.append((sp / rel).resolve() if ".." in rel else sp / rel)
        for path in set(candidates):
            try:
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if old in data:
                tmp = path.with_name(f".{path.name}.envmgr-tmp")
                tmp.write_bytes(data.replace(old, new))
                os.chmod(tmp, path.stat().st_mode)
                os.replace(tmp, path)

    async def verify_and_set_modes(self, records: list[Any], pip: list[dict[str, str]]) -> None:
        """:meth:`verify`, and the files' modes: a shared store's after it (its ``__pycache__``
        too); the local store's (the umask, also for uv's 0666 ``.lock``) by a walk in a thread
        while verify's python, another process, runs (what it writes has the umask already)."""
        self.log.set_phase("verify")
        if self.store.access is not None:
            await self.verify(records, pip)
            opened = await asyncio.to_thread(self.store.access.open_tree, self.staging)
            self.log.write(f"shared store: {opened} paths given the store's permissions")
            return
        walk = asyncio.ensure_future(asyncio.to_thread(restrict_tree, self.staging, user_umask()))
        try:
            await self.verify(records, pip)
        finally:
            await walk  # never left walking a staging directory a failed build removes

    async def verify(self, records: list[Any], pip: list[dict[str, str]]) -> None:
        python = self.staging / "bin" / "python"
        if not python.exists():
            raise BuildFailed("The environment has no bin/python: add python (or a base) to it")
        modules = [m for p in self.job.kernel_packages for m in kernel_modules(p)]
        if modules:
            await self.import_check(str(python), modules, records, pip)
        stale = str(self.staging).encode()
        for path in (self.staging / "bin").iterdir():
            try:
                if path.is_file() and not path.is_symlink():
                    with open(path, "rb") as f:
                        if stale in f.read(4096):
                            raise BuildFailed(f"{path.name} still refers to the staging directory")
            except OSError:
                continue

    async def import_check(
        self, python: str, modules: list[str], records: list[Any], pip: list[dict[str, str]]
    ) -> None:
        """Start the prefix's python to import ``modules``, unless a verify of the same lock
        loaded these very files, unchanged (see :mod:`.verified`)."""
        once = self.job.verify_once
        cache = self.package_cache(records).conda
        certificate = verified.path_of(cache, verified.key(records, pip, modules))
        done = await asyncio.to_thread(verified.holds, certificate, self.staging) if once else None
        if done is not None and await self.compile_missing(python, done):
            self.log.write(
                f"verified before: the {len(done['files'])} files python loads to import "
                f"{', '.join(modules)} are those a build of this lock checked, unchanged"
            )
            return
        self.log.write(f"checking that python imports {', '.join(modules)}")
        code = "import " + ", ".join(modules) + (verified.REPORT if once else "")
        report = str(self.staging / ".envmgr-verify.json")  # what python loaded; goes with it
        try:
            try:
                await self.run_logged([python, "-I", "-c", code, report], "verify", timeout=300)
            except BuildFailed as err:
                raise BuildFailed(
                    f"The environment's python cannot import the kernel packages: {err}"
                ) from None
            await asyncio.to_thread(self.share_bytecode, "keep")
            if once:
                args = (certificate, self.staging, Path(report), records)
                if note := await asyncio.to_thread(verified.keep, *args):
                    self.log.write(note)
        finally:
            Path(report).unlink(missing_ok=True)

    async def compile_missing(self, python: str, certificate: dict[str, Any]) -> bool:
        """Compile the modules the imports would have compiled (those written for this prefix,
        whose byte-code is never shared); False if one fails (the imports then run)."""
        missing = verified.uncompiled(self.staging, certificate)
        missing = [str(self.staging / rel) for rel in missing]
        if missing:
            self.log.write(f"compiling {len(missing)} modules python loads")
            argv = [python, "-I", "-S", "-c", verified.COMPILE, *missing]
            try:
                await self.run_logged(argv, "compiling", timeout=300)
            except BuildFailed as err:
                self.log.write(f"verify: {err}")
                return False
        return True

    async def run_logged(self, argv: list[str], what: str, timeout: float = 3600) -> None:
        env = {k: v for k, v in os.environ.items() if not _UV_INDEX_VARS.fullmatch(k)}
        env.update({"UV_NO_PROGRESS": "1", "NO_COLOR": "1", "UV_PYTHON_DOWNLOADS": "never"})
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
            # The user's umask: uv writes its cache in the home; what it (or python) makes in
            # the staging prefix gets the shared store's modes from open_tree afterwards.
            umask=user_umask(),
        )
        tail: list[str] = []
        assert proc.stdout is not None

        async def pump() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                self.log.write(line)
                tail.append(line)
                del tail[:-30]

        try:
            await asyncio.wait_for(asyncio.gather(pump(), proc.wait()), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            raise BuildFailed(f"{what} timed out after {timeout:.0f}s") from None
        if proc.returncode != 0:
            raise BuildFailed(f"{what} failed (exit {proc.returncode}): {_explanation(tail)}")


_UV_INDEX_VARS = re.compile(
    r"UV_(INDEX|INDEX_URL|EXTRA_INDEX_URL|DEFAULT_INDEX|FIND_LINKS|NO_INDEX|CONFIG_FILE)|PIP_.*"
)


# What a kernel package's kernel imports as it starts: verify imports it all, so a kernel that
# starts is checked, and its byte-code is compiled (and kept, see bytecode.py) at build time,
# not at every start of a kernel that may not write it (a teammate's, in a read-only store).
KERNEL_MODULES = {"ipykernel": ("ipykernel.kernelapp", "ipykernel.ipkernel")}


def kernel_modules(package: str) -> tuple[str, ...]:
    """The modules verify imports for a kernel package (another: its name, dashes read as
    underscores)."""
    return KERNEL_MODULES.get(package, (package.replace("-", "_"),))


def _explanation(tail: list[str]) -> str:
    """The tool's own account of a failure: from its last error marker to the end, one line.

    uv wraps its explanation over several lines (``× No solution found ... ╰─▶ Because ...``).
    """
    start = 0
    for i, line in enumerate(tail):
        stripped = line.strip()
        if stripped.startswith(("×", "error", "Error", "ERROR", "Traceback")):
            start = i
    text = " ".join(" ".join(tail[start:]).split())
    return text[:600] + ("…" if len(text) > 600 else "")


VARIABLES_FILE = "zz-jupyter-env-manager.json"
"""The spec's ``variables`` in the prefix's ``etc/conda/env_vars.d`` (conda's format: one JSON
object of names to values). Named to sort last: conda and rattler read the files in name order,
so the spec's values win over those a package ships."""


def write_variables(prefix: Path, variables: dict[str, str], log: BuildLog | None = None) -> None:
    """Write (or remove) the spec's variables in ``prefix`` so activation and kernels see them."""
    path = prefix / "etc" / "conda" / "env_vars.d" / VARIABLES_FILE
    if not variables:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(variables, indent=1, sort_keys=True) + "\n")
    if log is not None:
        log.write("variables: " + ", ".join(sorted(variables)))
