"""The Jupyter server extension: builds the core once, registers the routes, runs the start-up
work off the event loop, and stops the build queue and the watcher with the server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib

from jupyter_server.extension.application import ExtensionApp

from ..config import EnvManager
from ..core.runner import BuildQueue
from ..core.service import EnvService
from ..core.watcher import StoreWatcher
from .events import EventBridge
from .handlers import NAMESPACE, ROUTES
from .kernelspecs import KernelSpecsHandler
from .kernelspecs import install as install_kernelspecs


class EnvManagerExtension(ExtensionApp):
    """``jupyter_env_manager`` in ``jpserver_extensions``; configured by ``c.EnvManager``."""

    name = "jupyter_env_manager"
    load_other_extensions = True

    def initialize_settings(self) -> None:
        server = self.serverapp
        assert server is not None
        settings = EnvManager(config=server.config, parent=server)
        settings.log = server.log
        loop = server.io_loop.asyncio_loop  # type: ignore[attr-defined]  # AsyncIOLoop
        bridge = EventBridge(getattr(server, "event_logger", None), server.log, loop)
        self.watcher: StoreWatcher | None = None

        def emit(kind: str, data: dict) -> None:
            bridge(kind, data)
            if self.watcher is not None:  # what this server did: the watcher looks there first
                self.watcher.notice(kind, data)

        self.service = EnvService(settings, log=server.log, emit=emit)
        self.queue = BuildQueue(
            self.service,
            settings.max_concurrent_builds,
            settings.build_timeout_s,
            loop=loop,
            spare=settings.spare_worker,
        )
        self.service.runner = self.queue
        self.watcher = (
            StoreWatcher(self.service, settings.watch_interval_s, settings.watch_quiet_rounds)
            if settings.watch_interval_s > 0
            else None
        )
        self.startup: asyncio.Future | None = None
        self.retention_task: asyncio.Task | None = None
        self.stopping = asyncio.Event()
        self.settings.update({"env_manager": self.service, "env_manager_queue": self.queue})
        self.kernelspecs = (
            install_kernelspecs(server, server.log) if settings.cache_kernelspecs else None
        )
        if self.kernelspecs is not None:  # the handlers read it from the settings
            self.settings["kernel_spec_manager"] = self.kernelspecs
        server.log.info(
            "jupyter_env_manager: local store %s, shared store %s",
            settings.local_root,
            settings.shared_root or "(none)",
        )
        self.primed = self._prime()

    def initialize_handlers(self) -> None:
        self.handlers.extend((f"/{NAMESPACE}{path}", handler) for path, handler in ROUTES)
        if self.kernelspecs is not None:  # jupyter_server's route, served from the cache
            self.handlers.append(("/api/kernelspecs", KernelSpecsHandler))

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        """The start-up work runs off the event loop: the server answers meanwhile."""
        self.startup = asyncio.ensure_future(self._start_up())
        if self.service.settings.retention_interval_s > 0:
            self.retention_task = asyncio.ensure_future(self._retention_loop())

    def _prime(self) -> concurrent.futures.Future:
        """Make the lists in a thread begun as soon as the service exists. They are made while
        the server loads its other extensions, instead of when its loop starts: there
        JupyterLab's language-server discovery (jupyter_lsp's thread pool) would share the
        interpreter with them, and a panel's first request after a restart would wait."""
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="envmgr-prime")
        try:
            return pool.submit(self.service.listing.prime)  # its error: see _start_up
        finally:
            pool.shutdown(wait=False)  # the thread ends with the lists

    async def _start_up(self) -> None:
        """The list first, alone (begun in a thread, see _prime): a panel's first request
        after a restart finds it made (and its gzip), instead of sharing the interpreter with
        the rest. Then the watcher's first snapshot, the recovery and the kernel sync. Nothing
        they change is missed by the list: they write through the stores and the kernelspec
        directory, whose mtimes the next listing checks."""
        try:
            await asyncio.wrap_future(self.primed)
        except Exception:  # a broken store must not keep the server from starting
            self.service.log.exception("jupyter_env_manager: making the list failed")
        if self.stopping.is_set():
            return
        if self.watcher is not None:
            self.watcher.start()
        await asyncio.to_thread(self._recover_and_sync)

    async def _retention_loop(self) -> None:
        """Remove version directories nothing keeps, now and then (off the event loop)."""
        if self.startup is not None:
            await asyncio.gather(self.startup, return_exceptions=True)
        while True:
            try:
                done = await asyncio.to_thread(self.service.retention.collect)
                for key, names in done.removed.items():
                    self.service.log.info(
                        "jupyter_env_manager: removed %s of %s (retention)", ", ".join(names), key
                    )
                await asyncio.to_thread(self.service.disk.refresh)
            except Exception:
                self.service.log.exception("jupyter_env_manager: the retention pass failed")
            with contextlib.suppress(asyncio.TimeoutError):  # a pass is never cut short
                await asyncio.wait_for(
                    self.stopping.wait(), self.service.settings.retention_interval_s
                )
            if self.stopping.is_set():
                return

    def _recover_and_sync(self) -> None:
        log = self.service.log
        try:
            interrupted = self.service.recover()
            if interrupted:
                log.warning(
                    "jupyter_env_manager: builds interrupted by a restart: %s",
                    ", ".join(interrupted),
                )
            synced = self.service.kernels.sync()
            log.info(
                "jupyter_env_manager: kernelspecs created %s, updated %s, removed %s, failed %s",
                synced["created"] or "-",
                synced["updated"] or "-",
                synced["removed"] or "-",
                synced["failed"] or "-",
            )
        except Exception:  # a broken store must not keep the server from starting
            log.exception("jupyter_env_manager: start-up sync failed")

    async def stop_extension(self) -> None:
        self.stopping.set()
        if self.retention_task is not None:
            await asyncio.gather(self.retention_task, return_exceptions=True)
        if self.startup is not None:
            await asyncio.gather(self.startup, return_exceptions=True)
        await asyncio.gather(asyncio.wrap_future(self.primed), return_exceptions=True)
        if self.watcher is not None:
            await self.watcher.stop()
        await self.queue.shutdown()
