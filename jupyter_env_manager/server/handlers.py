"""REST API: thin handlers over the core's facade (:class:`~..core.service.EnvService`); the
route table is at the bottom.

Every handler parses its input, calls the core off the event loop with the acting user, and
writes JSON. Domain errors become ``{"message", "field"?, "item"?}`` with 400/403/404/409 in one
place (:meth:`BaseHandler.core`).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..core.bodies import (
    build_request,
    check_pin_body,
    copy_request,
    gc_request,
    install_request,
    parse_json_body,
    parse_offset,
    parse_version,
    pin_request,
    revert_version,
)
from ..core.errors import EnvManagerError, ValidationError
from ..core.listbody import validate_view
from ..core.runner import BuildQueue
from ..core.service import EnvService
from ..core.spec import validate_base, validate_scope
from ..core.store import Build

NAMESPACE = "env-manager"


class BaseHandler(APIHandler):
    auth_resource = "env_manager"

    @property
    def service(self) -> EnvService:
        return self.settings["env_manager"]

    @property
    def queue(self) -> BuildQueue:
        return self.settings["env_manager_queue"]

    @property
    def actor(self) -> str:
        """Who is acting: the server's identity of the request's user."""
        user = self.current_user
        return getattr(user, "username", None) or getattr(user, "name", None) or str(user)

    async def core(self, fn, *args, **kwargs) -> Any:
        """Call the core in a worker thread; map its errors to responses (the one place)."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except EnvManagerError as err:
            self._error(err)

    def body(self, required: bool = True) -> dict[str, Any]:
        return self.checked(parse_json_body, self.request.body, required)

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

    def accepted(self, payload: dict[str, Any], scope: str, name: str, build: Build) -> None:
        """202 for a build that goes on in the background, with its Location."""
        self.set_status(202)
        self.set_header("Location", self.env_url(scope, name, "builds", str(build.version)))
        self.finish(json.dumps(payload))

    def env_url(self, scope: str, name: str, *rest: str) -> str:
        return url_path_join(self.base_url, NAMESPACE, "environments", scope, name, *rest)


class InfoHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(json.dumps(await self.core(self.service.info)))


class EnvironmentsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        scope = self.get_query_argument("scope", None)
        scope = None if scope is None else self.checked(validate_scope, scope)
        view = self.checked(validate_view, self.get_query_argument("view", "full"))
        response = await self.core(self.service.listing.response, scope, view)
        self.set_header("Content-Type", "application/json")
        self.set_header("Vary", "Accept-Encoding")
        self.set_header("Cache-Control", "private, no-cache")  # kept, but asked again each time
        self.set_header("ETag", response.etag)
        if response.matches(self.request.headers.get("If-None-Match")):
            self.set_status(304)
            self.finish()
        elif "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            self.finish(response.compressed or await asyncio.to_thread(response.gzipped))
        else:
            self.finish(response.data)

    @tornado.web.authenticated
    @authorized
    async def post(self):
        env, _build = await self.core(self.service.envs.create, self.body(), self.actor)
        self.created(env, self.env_url(env["scope"], env["name"]))


class ImportHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        env, _build = await self.core(self.service.envs.import_, self.body(), self.actor)
        self.created(env, self.env_url(env["scope"], env["name"]))


class EnvironmentHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        self.finish(json.dumps(await self.core(self.service.envs.get, scope, name)))

    @tornado.web.authenticated
    @authorized
    async def patch(self, scope: str, name: str):
        env = await self.core(self.service.envs.update, scope, name, self.body(), self.actor)
        self.finish(json.dumps(env))

    @tornado.web.authenticated
    @authorized
    async def delete(self, scope: str, name: str):
        await self.core(self.service.envs.delete, scope, name, self.actor)
        self.set_status(204)
        self.finish()


class BuildsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        builds = await self.core(self.service.builds.list, scope, name)
        self.finish(json.dumps({"builds": builds}))

    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        offline = self.checked(build_request, self.body(required=False))
        build = await self.core(self.service.builds.start, scope, name, self.actor, offline)
        self.accepted({"build": build.public()}, scope, name, build)


class BuildHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str, version: str):
        build = await self.core(self.service.builds.get, scope, name, self.version_arg(version))
        self.finish(json.dumps(build.public()))


class CancelHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str, version: str):
        v = self.version_arg(version)
        await self.core(self.service.builds.check_cancellable, scope, name, v)
        await self.queue.cancel(scope, name, v)
        build = await self.core(self.service.builds.get, scope, name, v)
        self.finish(json.dumps(build.public()))


class LogHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str, version: str):
        offset = self.checked(parse_offset, self.get_query_argument("offset", "0"))
        data, next_offset = await self.core(
            self.service.builds.read_log, scope, name, self.version_arg(version), offset
        )
        self.set_header("X-Log-Offset", str(next_offset))
        self.set_header("Access-Control-Expose-Headers", "X-Log-Offset")
        self.finish(data, set_content_type="text/plain; charset=utf-8")


class KernelHandler(BaseHandler):
    """Turn an environment's kernel on or off."""

    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str, action: str):
        kernels = self.service.kernels
        call = kernels.activate if action == "activate" else kernels.deactivate
        self.finish(json.dumps(await self.core(call, scope, name, self.actor)))


class AdoptHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        env = await self.core(self.service.envs.adopt, scope, name, self.actor)
        self.finish(json.dumps(env))


class CopyHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        req = self.checked(copy_request, self.body())
        env, build = await self.core(
            self.service.sharing.copy, scope, name, req.to, req.name, self.actor
        )
        body = {"environment": env, "build": build.public()}
        self.accepted(body, env["scope"], env["name"], build)


class RevertHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        version = self.checked(revert_version, self.body())
        build = await self.core(self.service.builds.revert, scope, name, version, self.actor)
        self.accepted({"build": build.public()}, scope, name, build)


class InstallHandler(BaseHandler):
    """Add or remove packages: a build of the edited spec, recorded only if it succeeds."""

    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str, action: str):
        req = self.checked(install_request, self.body())
        build = await self.core(
            self.service.builds.install,
            scope,
            name,
            req.packages,
            pip=req.pip,
            remove=action == "uninstall",
            actor=self.actor,
        )
        self.accepted({"build": build.public()}, scope, name, build)


class PackagesHandler(BaseHandler):
    """The packages of a version, from its lock."""

    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        version = self.get_query_argument("version", None)
        self.finish(
            json.dumps(await self.core(self.service.packages.installed, scope, name, version))
        )


class DiffHandler(BaseHandler):
    """What changed between two versions (``other=SCOPE/NAME``: of another environment)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        version_from = self.get_query_argument("from", None)
        if version_from is None:
            self._error(ValidationError("'from' is required: a version number", field="from"))
        version_to = self.get_query_argument("to", None)
        other_arg = self.get_query_argument("other", None)
        other = None
        if other_arg:
            try:
                validate_base(other_arg)
            except ValidationError as err:
                err.field = "other"
                self._error(err)
            other_scope, _, other_name = other_arg.rpartition("/")
            other = (other_scope or scope, other_name)
        data = await self.core(
            self.service.packages.diff, scope, name, version_from, version_to, other=other
        )
        self.finish(json.dumps(data))


class SearchHandler(BaseHandler):
    """Packages whose names start with ``q`` in the channels (of environment scope/name)."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        query = self.get_query_argument("q", "")
        scope = self.get_query_argument("scope", None)  # "" is checked (a 400), not "none"
        name = self.get_query_argument("name", None)
        self.finish(json.dumps(await self.core(self.service.packages.search, query, scope, name)))


class PinsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        scope, name, version = self.checked(pin_request, self.body())
        self.finish(json.dumps(await self.core(self.service.pins.pin, scope, name, version)))


class PinCheckHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        self.checked(check_pin_body, body)
        self.finish(json.dumps(await self.core(self.service.pins.resolve, body, self.actor)))


class GcHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        scope, dry_run = self.checked(gc_request, self.body(required=False))
        done = await self.core(self.service.retention.collect, scope, None, dry_run)
        self.finish(
            json.dumps({"removed": done.removed, "kept_for_kernels": done.kept_for_kernels})
        )


class ExportHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, scope: str, name: str):
        fmt = self.get_query_argument("format", "environment.yml")
        if fmt == "bundle":
            return await self.send_bundle(scope, name)
        text, content_type, filename = await self.core(self.service.envs.export, scope, name, fmt)
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(text, set_content_type=f"{content_type}; charset=utf-8")

    async def send_bundle(self, scope: str, name: str) -> None:
        """The bundle (a tar file) of the version in use, written to a temporary file first."""
        from ..core.bundle import export_bundle

        with tempfile.TemporaryDirectory(prefix="envmgr-bundle-") as tmp:
            path = Path(tmp) / f"{name}.tar"
            await self.core(export_bundle, self.service, scope, name, path)
            self.set_header("Content-Type", "application/x-tar")
            self.set_header("Content-Disposition", f'attachment; filename="{name}.tar"')
            self.set_header("Content-Length", str(path.stat().st_size))
            with open(path, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, 1024 * 1024):
                    self.write(chunk)
                    await self.flush()
        self.finish()


@web.stream_request_body
class BundleImportHandler(BaseHandler):
    """``POST /bundles?scope=&name=``: the body is a bundle (a tar file), streamed to a
    temporary file up to ``c.EnvManager.max_bundle_mb``; 202 with the build's Location."""

    async def prepare(self):
        await super().prepare()
        if self.request.method != "POST":
            return
        if self.current_user is None:  # before any byte of the body is accepted
            raise web.HTTPError(403)
        limit = self.service.settings.max_bundle_mb * 1024 * 1024
        self.request.connection.set_max_body_size(limit)
        length = int(self.request.headers.get("Content-Length") or 0)
        if length > limit:
            self.set_status(413)
            raise web.Finish(json.dumps({"message": f"A bundle is at most {limit >> 20} MiB"}))
        self._upload = tempfile.TemporaryFile(prefix="envmgr-bundle-")
        self._received = 0
        self._limit = limit

    def data_received(self, chunk: bytes) -> None:
        # The connection refuses more than the limit (set_max_body_size); this is the guard.
        self._received += len(chunk)
        if self._received <= self._limit:
            self._upload.write(chunk)

    def on_finish(self) -> None:
        upload = getattr(self, "_upload", None)
        if upload is not None:
            upload.close()

    @tornado.web.authenticated
    @authorized
    async def post(self):
        from ..core.bundle import import_bundle

        scope = self.get_query_argument("scope", "local")
        name = self.get_query_argument("name", None)
        if self._received > self._limit:
            self.set_status(413)
            raise web.Finish(
                json.dumps({"message": f"A bundle is at most {self._limit >> 20} MiB"})
            )
        self._upload.seek(0)
        env, build = await self.core(
            import_bundle, self.service, self._upload, scope, name, self.actor
        )
        self.accepted(
            {"environment": env, "build": build.public()}, env["scope"], env["name"], build
        )


class InstallAllHandler(BaseHandler):
    """Install packages into every environment the user may change: one build each (202)."""

    @tornado.web.authenticated
    @authorized
    async def post(self):
        rows = await self.core(self.service.fleet.install_all, self.body(), self.actor)
        self.set_status(202)
        self.finish(json.dumps({"results": rows}))


class WhichHandler(BaseHandler):
    """Which environments hold a package matching ``spec`` (a conda or pip spec)."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        spec = self.get_query_argument("spec", None)
        scope = self.get_query_argument("scope", None)  # "" is checked (a 400), not "any"
        kind = self.get_query_argument("kind", None)
        self.finish(json.dumps(await self.core(self.service.fleet.which, spec, scope, kind)))


class WheelHandler(BaseHandler):
    """Upload a private wheel (the request body, ``?filename=``): stored with the environment
    and built into it (202 with the build). Over 64 MiB answers 413."""

    @tornado.web.authenticated
    @authorized
    async def post(self, scope: str, name: str):
        filename = self.get_query_argument("filename", None)
        if filename is None:
            self._error(ValidationError("'filename' is required: the wheel's file name",
                                        field="filename"))  # fmt: skip
        build = await self.core(
            self.service.wheels.add, scope, name, filename, self.request.body, self.actor
        )
        self.accepted({"build": build.public()}, scope, name, build)


class RequestsHandler(BaseHandler):
    """Publish requests: the list (``status=`` filters), and submitting one."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        status = self.get_query_argument("status", None)  # "" too is checked by the core
        pub = self.service.publishing
        self.finish(json.dumps(await self.core(pub.list_requests, status, self.actor)))

    @tornado.web.authenticated
    @authorized
    async def post(self):
        req = await self.core(self.service.publishing.submit_body, self.body(), self.actor)
        self.created(req, url_path_join(self.base_url, NAMESPACE, "requests", req["id"]))


class RequestHandler(BaseHandler):
    """One request, for review: its diff against the published version and its checks."""

    @tornado.web.authenticated
    @authorized
    async def get(self, rid: str):
        self.finish(json.dumps(await self.core(self.service.publishing.get, rid, self.actor)))


class RequestActionHandler(BaseHandler):
    """Approve (202: the publish goes on in the background), reject (a reason), withdraw."""

    @tornado.web.authenticated
    @authorized
    async def post(self, rid: str, action: str):
        pub = self.service.publishing
        groups = getattr(self.current_user, "groups", None)
        if action == "approve":
            req = await self.core(pub.approve, rid, self.actor, groups)
            self.set_status(202 if req["status"] == "publishing" else 200)
        elif action == "reject":
            reason = self.body().get("reason")
            req = await self.core(pub.reject, rid, reason, self.actor, groups)
        else:
            req = await self.core(pub.withdraw, rid, self.actor)
        self.finish(json.dumps(req))


class AuditHandler(BaseHandler):
    """The audit log of publishing (``request=ID``: one request's events)."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        rid = self.get_query_argument("request", None) or None
        self.finish(json.dumps(await self.core(self.service.publishing.events, rid)))


_ENV = r"/environments/(?P<scope>[^/]+)/(?P<name>[^/]+)"
_BUILD = _ENV + r"/builds/(?P<version>[^/]+)"
ROUTES = [
    (r"/info", InfoHandler),
    (r"/environments", EnvironmentsHandler),
    (r"/environments/import", ImportHandler),
    (r"/packages/search", SearchHandler),
    (r"/pins", PinsHandler),
    (r"/pins/check", PinCheckHandler),
    (r"/gc", GcHandler),
    (_ENV, EnvironmentHandler),
    (_ENV + r"/builds", BuildsHandler),
    (_BUILD, BuildHandler),
    (_BUILD + r"/cancel", CancelHandler),
    (_BUILD + r"/log", LogHandler),
    (_ENV + r"/(?P<action>activate|deactivate)", KernelHandler),
    (_ENV + r"/adopt", AdoptHandler),
    (_ENV + r"/(?P<action>install|uninstall)", InstallHandler),
    (_ENV + r"/packages", PackagesHandler),
    (_ENV + r"/diff", DiffHandler),
    (_ENV + r"/copy", CopyHandler),
    (_ENV + r"/revert", RevertHandler),
    (_ENV + r"/export", ExportHandler),
    (r"/bundles", BundleImportHandler),
    (r"/install-all", InstallAllHandler),
    (r"/which", WhichHandler),
    (_ENV + r"/wheels", WheelHandler),
    (r"/requests", RequestsHandler),
    (r"/requests/(?P<rid>[^/]+)", RequestHandler),
    (r"/requests/(?P<rid>[^/]+)/(?P<action>approve|reject|withdraw)", RequestActionHandler),
    (r"/audit", AuditHandler),
]
