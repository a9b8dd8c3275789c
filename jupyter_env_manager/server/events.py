"""The core's events, emitted as jupyter_events on the server's event loop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

EVENT_SCHEMAS = Path(__file__).parent / "events"
EVENT_IDS = {
    kind: f"https://events.jupyter.org/jupyter_env_manager/{kind}/v1"
    for kind in ("environment", "build", "kernel", "request")
}


class EventBridge:
    """Emits the core's events as jupyter_events, on the server's event loop.

    The core runs in worker threads, and ``EventLogger.emit`` starts its listeners (the
    ``/api/events/subscribe`` WebSocket among them) as tasks of the running loop: events from
    other threads are handed over to the loop, which is bound once at start.
    """

    def __init__(self, logger, log: logging.Logger, loop: asyncio.AbstractEventLoop):
        self.logger = logger
        self.log = log
        self.loop = loop
        if logger is not None:
            for path in sorted(EVENT_SCHEMAS.glob("*.yaml")):
                logger.register_event_schema(path)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if self.logger is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._emit(kind, data)
        else:
            self.loop.call_soon_threadsafe(self._emit, kind, data)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.logger.emit(schema_id=EVENT_IDS[kind], data=data)
        except Exception:  # an event must never break the action that caused it
            self.log.exception("Could not emit %s event", kind)
