"""REST API: thin handlers over :class:`~.service.EnvService`; the route table is at the bottom.

Every handler parses its input, calls the core off the event loop, and writes JSON. Domain
errors become ``{"message", "field"?, "item"?}`` with 400/404/409 in one place (:meth:`core`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .bodies import copy_request, parse_json_body, parse_offset, parse_version, revert_version
from .builds import BuildQueue
from .errors import EnvManagerError
from .spec import validate_scope

NAMESPACE = "env-manager"
EVENT_SCHEMAS = Path(__file__).parent / "events"
EVENT_IDS = {
    kind: f"https://events.jupyter.org/jupyter_env_manager/{kind}/v1"
    for kind in ("environment", "build", "kernel")
}


class BaseHandler(APIHandler):
    auth_resource = "env_manager"

    @property
    def service(self):
        return self.settings["env_manager"]

    @property
    def queue(self) -> BuildQueue:
        return self.settings["env_manager_queue"]

    async def core(self, fn, *args, **kwargs) -> Any:
        """Call the core in a worker thread; map its errors to responses (the one place)."""
        self.settings["env_manager_events"].bind(asyncio.get_running_loop())
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except EnvManagerError as err:
            self.set_status(err.status)
            self.set_header("Content-Type", "application/json")
            raise web.Finish(json.dumps(err.to_dict())) from None

    def body(self) -> dict[str, Any]:
        return self.checked(parse_json_body, self.request.body)

    def version_arg(self, version: str) -> int:
        return self.checked(parse_version, version)

    def checked(self, fn, *args) -> Any:
        """Call a quick check of the core (no I/O) on the loop; its errors as :meth:`core`."""
        try:
            return fn(*args)
        except EnvManagerError as err:
            self._error(err)

    def _error(self, err: EnvManagerError) -> None:
        self.set_status(err.status)
        self.set_header("Content-Type", "application/json")
        raise web.Finish(json.dumps(err.to_dict()))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, web.HTTPError):
            return super().log_exception(typ, value, tb)
        # A bug: the traceback goes to the log under a reference the client is given.
        self._error_ref = uuid.uuid4().hex[:12]
        self.log.error(
            "Uncaught exception %s %s (reference %s)",
            self.request.method,
            self.request.path,
            self._error_ref,
            exc_info=(typ, value, tb),
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Everything else (auth, bad routes, bugs) also answers with a JSON {"message"}.
        self.set_header("Content-Type", "application/json")
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or reason
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if status_code >= 500:  # never exception text: it may hold paths, names, secrets
            ref = getattr(self, "_error_ref", None) or uuid.uuid4().hex[:12]
            message = f"Internal server error (reference {ref}: see the server log)"
        self.finish(json.dumps({"message": message, "reason": reason}))

    def allowed_methods(self) -> list[str]:
        """The methods this route implements (for the ``Allow`` header of a 405)."""
        return [
            m
            for m in self.SUPPORTED_METHODS
            if m != "OPTIONS"
            and getattr(type(self), m.lower(), None) is not getattr(web.RequestHandler, m.lower())
        ]

    def created(self, payload: dict[str, Any], location: str) -> None:
        self.set_status(201)
        self.set_header("Location", location)
        self.finish(json.dumps(payload))

    def env_url(self, scope: str, name: str) -> str:
        return url_path_join(self.base_url, NAMESPACE, "environments", scope, name)


class InfoHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(json.dumps(self.service.info()))  # memory only: no thread needed


class EnvironmentsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        scope = self.get_query_argument("scope", None)
        scope = None if scope is None else self.checked(validate_scope, scope)
        envs = await self.core(self.service.list_envs, scope)
        self.finish(json.dumps({"environments": envs}))

    @tornado.web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        build = body.get("build", False)
        env = await self.core(self.service.create_env, body)
        if build:
            await self._start_build(env["scope"], env["name"])
            env = await self.core(self.service.get_env, env["scope"], env["name"], False)
        self.created(env, self.env_url(env["scope"], env["name"]))

    async def _start_build(self, scope: str, name: str):
        build = await self.core(self.service.prepare_build, scope, name)
        self.queue.submit(scope, name, build)
        return build


class ImportHandler(EnvironmentsHandler):
    get = web.RequestHandler.get  # not inherited: GET import is a 405 (Allow: POST)

    @tornado.web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        env = await self.core(self.service.import_env, body)
        if body.get("build"):
            await self._start_build(env["scope"], env["name"])
            env = await self.core(self.service.get_env, env["scope"], env["name"], False)
        self.created(env, self.env_url(env["scope"], env["name"]))


class EnvironmentHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        self.finish(json.dumps(await self.core(self.service.get_env, scope, name)))

    @tornado.web.authenticated
    @authorized
    async def patch(self, scope: str, name: str):
        env = await self.core(self.service.update_env, scope, name, self.body())
        self.finish(json.dumps(env))

    @tornado.web.authenticated
    @authorized
    async def delete(self, scope: str, name: str):
        await self.core(self.service.delete_env, scope, name)
        self.set_status(204)
        self.finish()


class BuildsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        self.finish(json.dumps({"builds": await self.core(self.service.builds, scope, name)}))

    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        build = await self.core(self.service.prepare_build, scope, name)
        self.queue.submit(scope, name, build)
        self.set_status(202)
        self.finish(json.dumps({"build": build.public()}))


class BuildHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str, version: str):
        build = await self.core(self.service.get_build, scope, name, self.version_arg(version))
        self.finish(json.dumps(build.public()))

    @tornado.web.authenticated
    @authorized
    async def delete(self, scope: str, name: str, version: str):
        v = self.version_arg(version)
        await self.core(self.service.check_cancellable, scope, name, v)
        await self.queue.cancel(scope, name, v)
        build = await self.core(self.service.get_build, scope, name, v)
        self.finish(json.dumps(build.public()))


class LogHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str, version: str):
        offset = self.checked(parse_offset, self.get_query_argument("offset", "0"))
        data, next_offset = await self.core(
            self.service.read_log, scope, name, self.version_arg(version), offset
        )
        self.set_header("X-Log-Offset", str(next_offset))
        self.set_header("Access-Control-Expose-Headers", "X-Log-Offset")
        self.finish(data, set_content_type="text/plain; charset=utf-8")


class ActivateHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str, action: str):
        call = {
            "activate": self.service.activate,
            "deactivate": self.service.deactivate,
            "adopt": self.service.adopt,
        }[action]
        self.finish(json.dumps(await self.core(call, scope, name)))


class CopyHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        req = self.checked(copy_request, self.body())
        env, build = await self.core(self.service.prepare_copy, scope, name, req.to, req.name)
        self.queue.submit(env["scope"], env["name"], build)
        self.set_status(202)
        self.set_header("Location", self.env_url(env["scope"], env["name"]))
        self.finish(json.dumps({"environment": env, "build": build.public()}))


class RevertHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        version = self.checked(revert_version, self.body())
        build = await self.core(self.service.prepare_revert, scope, name, version)
        self.queue.submit(scope, name, build)
        self.set_status(202)
        self.finish(json.dumps({"build": build.public()}))


class ExportHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        fmt = self.get_query_argument("format", "environment.yml")
        text, content_type, filename = await self.core(self.service.export, scope, name, fmt)
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(text, set_content_type=f"{content_type}; charset=utf-8")


class EventBridge:
    """Emits the core's events as jupyter_events, on the server's event loop.

    The core runs in worker threads, and ``EventLogger.emit`` starts its listeners (the
    ``/api/events/subscribe`` WebSocket among them) as tasks of the running loop: events from
    other threads are handed over to the loop.
    """

    def __init__(self, logger, log):
        self.logger = logger
        self.log = log
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if self.logger is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None or self.loop is None:
            self._emit(kind, data)
        else:
            self.loop.call_soon_threadsafe(self._emit, kind, data)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.logger.emit(schema_id=EVENT_IDS[kind], data=data)
        except Exception:  # an event must never break the action that caused it
            self.log.exception("Could not emit %s event", kind)


def setup_handlers(web_app, service, server_app=None) -> None:
    """Register routes and event schemas; hook core events to jupyter_events."""
    logger = getattr(server_app, "event_logger", None) if server_app else None
    if logger is not None:
        for path in sorted(EVENT_SCHEMAS.glob("*.yaml")):
            logger.register_event_schema(path)
    bridge = EventBridge(logger, service.log)
    service.emit = bridge
    web_app.settings["env_manager_events"] = bridge
    web_app.settings["env_manager"] = service
    web_app.settings["env_manager_queue"] = BuildQueue(
        service, service.settings.max_concurrent_builds, service.settings.build_timeout_s
    )
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(".*$", [(base + path, handler) for path, handler in ROUTES])


_ENV = r"/environments/(?P<scope>[^/]+)/(?P<name>[^/]+)"
ROUTES = [
    (r"/info", InfoHandler),
    (r"/environments", EnvironmentsHandler),
    (r"/environments/import", ImportHandler),
    (_ENV, EnvironmentHandler),
    (_ENV + r"/builds", BuildsHandler),
    (_ENV + r"/builds/(?P<version>[^/]+)", BuildHandler),
    (_ENV + r"/builds/(?P<version>[^/]+)/log", LogHandler),
    (_ENV + r"/(?P<action>activate|deactivate|adopt)", ActivateHandler),
    (_ENV + r"/copy", CopyHandler),
    (_ENV + r"/revert", RevertHandler),
    (_ENV + r"/export", ExportHandler),
]
