"""A store: its layout (:mod:`.layout`) and the life of its builds.

- Every lock wait is bounded (:data:`LOCK_WAIT_S`) and ends in a :class:`Conflict` naming the
  environment; ``env_lock`` is re-entrant within a thread, so no path waits on a lock it holds.
- One commit point: a build is in use, and succeeded, exactly when ``<root>/<name>`` has been
  switched to its version's directory (a symlink renamed over it); that directory carries the
  build's marker (version and build id), so after any kill :meth:`Store.finish` (called by the
  worker, its parent, or a reaper) records "vN succeeded and in use" or "vN did not happen and
  v(N-1) is in use". Version directories never move and are removed only by :mod:`.retention`.
- Builds are told apart by a unique id (``build.json``), never by (scope, name, version) alone:
  a recreated environment's v1 is never taken for the deleted one's.
- A queued build whose owner (same host, pid and process start time) is gone, and a running
  build whose worker no longer holds ``build.lock``, are ended as interrupted with a reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bodies import VERSION_RE
from .errors import Conflict, EnvManagerError, NotFound
from .identity import MARKER, current_user, process_start
from .layout import LOCK_WAIT_S, META, StoreLayout
from .records import (
    CANCEL_REQUEST,
    LIVE,
    PAUSE_ENV,
    STOP_REASON,
    STORE_FORMAT,
    TERMINAL,
    Build,
    EnvRecord,
    host_owner,
    now,
    owner_alive,
    pause_point,
    random_hex,
    read_json,
    write_json,
)
from .spec import EnvSpec

__all__ = [
    "CANCEL_REQUEST", "LIVE", "LOCK_WAIT_S", "MARKER", "META", "PAUSE_ENV", "STOP_REASON",
    "STORE_FORMAT", "TERMINAL", "Build", "EnvRecord", "Store", "current_user", "host_owner",
    "now", "owner_alive", "pause_point", "process_start", "read_json", "write_json",
]  # fmt: skip


class Store(StoreLayout):
    """One root directory (the local store or the shared store), and its builds' lifecycle."""

    def reap(self, name: str, build: Build) -> Build:
        """End a queued/running build whose owner is gone (see :meth:`finish`)."""
        if build.status in LIVE and not self.build_is_alive(name, build):
            if not os.access(self.build_dir(name, build.version), os.W_OK):
                return build  # a teammate's, in a store read-only for us: its owner will
            if build.status == "running":
                reason = "The build was interrupted (its worker process ended)"
            else:
                owner = build.owner or {}
                reason = (
                    "The build was interrupted (the process that queued it, pid "
                    f"{owner.get('pid')} on {owner.get('host')}, ended before it started)"
                )
            try:
                return self.finish(
                    name, build.version, "interrupted", reason, build_id=build.id, if_dead=True
                )
            except NotFound:
                return build
        return build

    def finish(
        self,
        name: str,
        version: int,
        status: str,
        error: str | None,
        *,
        build_id: str | None = None,
        clear_staging: bool = True,
        if_dead: bool = False,
    ) -> Build:
        """Record the end of a build: the one place a build becomes terminal.

        Called by the worker itself, by whoever started it once it exited, or by a reaper
        (``if_dead``: only if its owner is still gone, checked under the lock). A swap cut short
        is finished or undone first; then the prefix in use decides: if it carries this build's
        marker the build succeeded (whatever ``status`` says: it is in use), otherwise it did
        not and the previous version stays. Staging (unless ``clear_staging`` is false: a
        cancelled worker's threads may still write there) and this environment's trash go.
        """
        leftovers: list[Path] = []
        if clear_staging and not if_dead and self.build_of(name, version, build_id):
            # First free the space (a full disk may be why it failed), then record the end.
            self.remove_tree(self.staging_dir(name, version))
        with self.env_lock(name):
            build = self.build_of(name, version, build_id)
            if build is None:
                raise NotFound(f"Environment {name!r} has no build {version} (id {build_id})")
            if build.status in LIVE and not (if_dead and self.build_is_alive(name, build)):
                self.recover_swap(name)
                if self.committed(name, build):
                    status, error = "succeeded", None
                    state = self.read_state(name)
                    if state.get("active_version") != version:
                        state["active_version"] = version
                        self.write_state(name, state)
                elif status == "succeeded":
                    status, error = "failed", "The new version was not put in use"
                build.status, build.error, build.finished_at = status, error, now()
                if build.phases:
                    build.phases[-1].setdefault("finished_at", build.finished_at)
                self.write_build(name, build)
            if build.status not in LIVE:
                staging = self.staging_dir(name, version)
                if clear_staging and staging.exists():
                    leftovers.append(self._to_trash(staging, name))
                leftovers += self.trash_of(name)
        for path in leftovers:
            self.remove_tree(path)
        return build

    def committed(self, name: str, build: Build) -> bool:
        """Whether ``build`` is the one in use (the prefix carries its marker)."""
        marker = read_json(self.prefix(name) / MARKER, {}) or {}
        if marker.get("build_id") and build.id:
            return marker["build_id"] == build.id
        return marker.get("version") == build.version and build.status in LIVE

    def trash_of(self, name: str) -> list[Path]:
        """This environment's old prefixes in the trash (no swap of it is under way: the
        caller holds its env lock, and swaps hold it from journal to rename)."""
        try:
            entries = list(os.scandir(self.trash))
        except FileNotFoundError:
            return []
        return [
            Path(e.path)
            for e in entries
            if e.name.rpartition(".")[0] == name and len(e.name.rpartition(".")[2]) == 8
        ]

    def to_trash(self, path: Path, name: str) -> Path:
        """Rename ``path`` into the trash as one of ``name``'s (removed by :meth:`finish`,
        :meth:`recover` or the caller)."""
        return self._to_trash(path, name)

    def _to_trash(self, path: Path, name: str) -> Path:
        self._mkdir(self.trash, exist_ok=True)
        gone = self.trash / f"{name}.{random_hex(4)}"
        os.rename(path, gone)
        return gone

    # -- cancel requests ---------------------------------------------------------------------

    def request_cancel(self, name: str, version: int, by: str) -> None:
        """Ask the worker of a build to cancel it (it polls for this file)."""
        path = self.build_dir(name, version) / CANCEL_REQUEST
        self._write_json(path, {"by": by, "at": now(), "host": socket.gethostname()})

    def cancel_requested(self, name: str, version: int) -> dict[str, Any] | None:
        return read_json(self.build_dir(name, version) / CANCEL_REQUEST)

    # -- putting a prefix in use -------------------------------------------------------------

    def swap_in(
        self,
        name: str,
        staging: Path,
        build_id: str,
        version: int,
        summary: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """Put a finished staging prefix in use: the build's commit point.

        Under the env lock, and only if the build is still this environment's running build
        ``build_id`` (a deleted or recreated environment gets nothing). The staging directory
        becomes the version's own directory (:meth:`version_prefix`), then ``<root>/<name>`` is
        switched to it by renaming a new symlink over it: one atomic step, after which every
        new kernel starts on this version while running ones keep theirs (the old version's
        directory is not touched; :mod:`.retention` decides when it goes). A journal names the
        swap; :meth:`recover_swap` finishes or undoes one that a crash cut short. ``spec`` (a
        revert, an install) becomes the environment's spec in the same step.
        """
        target = self.prefix(name)
        final = self.version_prefix(name, version, build_id)
        journal = self.env_dir(name) / "swap.json"
        with self.env_lock(name):
            build = self.build_of(name, version, build_id)
            if build is None or build.status != "running" or not self.exists(name):
                raise Conflict(
                    f"Environment {name!r} was deleted or recreated during build v{version}: "
                    "its result is not put in use",
                    item=name,
                )
            (staging / MARKER).write_text(json.dumps({"version": version, "build_id": build_id}))
            legacy = None
            if target.is_dir() and not target.is_symlink():  # made by the first release
                legacy = self.versions_dir(name) / f"v{self.active_version(name) or 0}-legacy"
            self._write_json(
                journal,
                {
                    "version": version,
                    "build_id": build_id,
                    "staging": str(staging),
                    "final": str(final),
                    "legacy": str(legacy) if legacy else None,
                    "summary": summary,
                    "spec": spec,
                },
            )
            self._mkdir(self.meta / "prefixes", exist_ok=True)
            self._mkdir(self.versions_dir(name), exist_ok=True)
            os.rename(staging, final)
            pause_point("version-dir")
            if legacy is not None:
                os.rename(target, legacy)
            self._switch(name, final, pause=True)  # the commit point
            pause_point("swap")
            self._committed_swap(name, version, summary, spec)
            journal.unlink()

    def place_version(self, name: str, staging: Path, version: int, build_id: str) -> Path:
        """Make a complete staging prefix version ``version``'s own directory, without putting
        it in use (a pinned version made again from its lock). If another process made it
        meanwhile, theirs stays and ours goes."""
        final = self.version_prefix(name, version, build_id)
        with self.env_lock(name):
            build = self.build_of(name, version, build_id)
            if build is None or build.status != "succeeded":
                raise Conflict(
                    f"Version {version} of {name!r} is not a succeeded build any more", item=name
                )
            self._mkdir(self.meta / "prefixes", exist_ok=True)
            self._mkdir(self.versions_dir(name), exist_ok=True)
            if not final.exists():
                os.rename(staging, final)
        return final

    def _switch(self, name: str, directory: Path, pause: bool = False) -> None:
        """Point ``<root>/<name>`` at ``directory``: a new symlink renamed over it (atomic)."""
        tmp = self.root / f".{name}.envmgr-link"
        tmp.unlink(missing_ok=True)
        os.symlink(self.link_target(name, directory), tmp)
        if pause:  # the kill loop's point; never in a recovery
            pause_point("link")
        os.replace(tmp, self.prefix(name))

    def _committed_swap(
        self, name: str, version: int, summary: dict[str, Any] | None, spec: dict[str, Any] | None
    ) -> None:
        state = self.read_state(name)
        state.update(summary or {}, active_version=version)
        self.write_state(name, state)
        if spec is not None:
            record = self.read_env(name)
            record.spec = EnvSpec.from_dict(spec)
            record.updated_at = now()
            self.write_env(name, record)

    def recover_swap(self, name: str) -> None:
        """Finish (the new version's directory, or its staging, is complete: it carries the
        build's marker) or undo (put a first-release prefix back) a swap cut short. Call with
        the env lock held."""
        journal = self.env_dir(name) / "swap.json"
        data = read_json(journal)
        (self.root / f".{name}.envmgr-link").unlink(missing_ok=True)
        if not data:
            return
        if "final" not in data:  # a journal of the first release (prefix replaced in place)
            self._recover_swap_in_place(name, data)
            journal.unlink(missing_ok=True)
            return
        target = self.prefix(name)
        mine = {"version": data["version"], "build_id": data["build_id"]}

        def carries(prefix: Path) -> bool:
            marker = read_json(prefix / MARKER, {}) or {}
            return all(marker.get(k) == v for k, v in mine.items())

        summary, spec = data.get("summary"), data.get("spec")
        final, staging = Path(data["final"]), Path(data["staging"])
        legacy = Path(data["legacy"]) if data.get("legacy") else None
        if not carries(target):
            if staging.is_dir() and carries(staging) and not final.exists():
                os.rename(staging, final)
            if final.is_dir() and carries(final):
                if legacy is not None and target.is_dir() and not target.is_symlink():
                    os.rename(target, legacy)
                self._switch(name, final)
            elif legacy is not None and legacy.is_dir() and not os.path.lexists(target):
                os.rename(legacy, target)  # undo: the first-release prefix goes back
        if carries(target):
            self._committed_swap(name, data["version"], summary, spec)
        journal.unlink(missing_ok=True)

    def _recover_swap_in_place(self, name: str, data: dict[str, Any]) -> None:
        """A swap of the first release: the old prefix was renamed to the trash and the staging
        prefix onto ``<root>/<name>``."""
        target = self.prefix(name)
        mine = {"version": data["version"]}
        if data.get("build_id"):
            mine["build_id"] = data["build_id"]

        def carries(prefix: Path) -> bool:
            marker = read_json(prefix / MARKER, {}) or {}
            return all(marker.get(k) == v for k, v in mine.items())

        summary, spec = data.get("summary"), data.get("spec")
        if target.exists():
            if carries(target):
                self._committed_swap(name, data["version"], summary, spec)
            return
        staging = Path(data.get("staging") or "/nonexistent")
        old = Path(data["old"]) if data.get("old") else None
        if staging.is_dir() and carries(staging):
            os.rename(staging, target)
            self._committed_swap(name, data["version"], summary, spec)
        elif old is not None and old.is_dir():
            os.rename(old, target)
        elif old is None:  # the newest trashed prefix
            candidates = sorted(self.trash_of(name), key=lambda p: p.lstat().st_mtime, reverse=True)
            if candidates:
                os.rename(candidates[0], target)

    def recover(self, pause: Callable[[], None] | None = None) -> list[tuple[str, int]]:
        """At start: finish cut-short swaps, mark dead builds interrupted, clear leftovers.

        ``pause``: called between environments (the server's: wait while a listing runs)."""
        reaped = []
        managed = self.managed_names()
        # One scan of the trash and of the root, not one per environment: a server starting
        # over thousands of environments locks only those with something to recover.
        try:
            trashed = {e.name.rpartition(".")[0] for e in os.scandir(self.trash)}
        except FileNotFoundError:
            trashed = set()
        links = {e.name for e in os.scandir(self.root) if e.name.endswith(".envmgr-link")}
        for name in managed:
            if pause is not None:
                pause()
            if (
                name not in trashed
                and f".{name}.envmgr-link" not in links
                and not os.path.exists(os.path.join(self.meta, "envs", name, "swap.json"))
                and not self._latest_live(name)
            ):
                continue  # nothing cut short (a swap starting now is its owner's, not ours)
            try:
                with self.env_lock(name):
                    self.recover_swap(name)
                    build = self.latest_build(name)
                    if build and build.status in LIVE:
                        after = self.reap(name, build)
                        if after.status == "interrupted" and build.status != after.status:
                            reaped.append((name, build.version))
                    if not (self.env_dir(name) / "swap.json").exists():
                        for path in self.trash_of(name):
                            self.remove_tree(path)
            except (OSError, EnvManagerError):
                continue
        staging = self.meta / "staging"
        if staging.is_dir():
            for entry in staging.iterdir():
                name, _, v = entry.name.rpartition(".v")
                live = False
                if name and VERSION_RE.fullmatch(v) and self.exists(name):
                    try:
                        b = self.read_build(name, int(v))
                        live = b.status in LIVE and self.build_is_alive(name, b)
                    except NotFound:
                        live = False
                if not live:
                    self.remove_tree(entry)
        if self.trash.is_dir():
            # A managed environment's old prefixes went above, under its lock (one may be the
            # way back of a swap under way elsewhere); the rest (deleted metadata) goes now.
            for entry in self.trash.iterdir():
                if entry.name.rpartition(".")[0] not in managed:
                    self.remove_tree(entry)
        return reaped

    def _latest_live(self, name: str) -> bool:
        try:
            latest = self.latest_build(name)
        except (OSError, EnvManagerError):
            return True  # let the locked pass look
        return latest is not None and latest.status in LIVE

    def remove_tree(self, path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)

    def delete_env(self, name: str) -> None:
        """Remove the environment's usual path and metadata (each first renamed away,
        atomically). Its version directories are then :mod:`.retention`'s: those running
        kernels use stay until the kernels end.

        Refused (409) while a build of it runs anywhere: its build lock is taken, without
        waiting, for the whole delete, so no worker can start, swap or record meanwhile.
        """
        fd = self.try_build_lock(name)
        if fd is None:
            raise Conflict(
                f"A build of {name!r} is running (its worker holds the build lock): cancel it "
                "or wait for it to end",
                item=name,
            )
        gone: list[Path] = []
        try:
            with self.env_lock(name):
                latest = self.latest_build(name)
                if latest and latest.status in LIVE and self.build_is_alive(name, latest):
                    raise Conflict(
                        f"Build v{latest.version} of {name!r} is {latest.status}: cancel it first",
                        item=name,
                    )
                self._mkdir(self.trash, exist_ok=True)
                if os.path.lexists(self.prefix(name)):  # the link (or a first-release prefix)
                    gone.append(self._to_trash(self.prefix(name), name))
                meta = self.trash / f"meta-{name}.{random_hex(4)}"
                os.rename(self.env_dir(name), meta)
                gone.append(meta)
                for entry in (self.meta / "staging").glob(f"{name}.v*"):
                    gone.append(self._to_trash(entry, name))
        finally:
            os.close(fd)
        for path in gone:
            self.remove_tree(path)
