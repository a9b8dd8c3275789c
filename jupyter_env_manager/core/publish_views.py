"""How publish requests show in the environments' views: this user's requests from their drafts
(:meth:`RequestViews.by_source`), and each view's ``lifecycle`` (draft, pending, rejected,
published ...) with the publishing actions it allows (:meth:`RequestViews.decorate`).

A part of :class:`.publishing.Publishing` (its base class), kept apart because the listing
calls it for every environment while the rest of publishing is about requests themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import audit
from .actions import NO_SHARED, publish_actions
from .errors import EnvManagerError

if TYPE_CHECKING:
    from .service import EnvService


class RequestViews:
    # What Publishing, the class this is a base of, provides.
    svc: EnvService
    _index: tuple[float, list[dict[str, Any]]] | None
    _all: Callable[[], list[dict[str, Any]]]
    status: Callable[[dict[str, Any]], dict[str, Any]]
    can_approve: Callable[..., tuple[bool, str]]

    def by_source(self) -> list[dict[str, Any]]:
        """This user's requests with their status (cached for a second: listing is hot)."""
        if self.svc.shared is None:
            return []
        cached = self._index
        if cached is not None and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        mine = []
        try:
            for req in self._all():
                if self.is_mine(req):
                    mine.append({**req, "_status": self.status(req)})
        except (OSError, EnvManagerError):
            mine = []
        self._index = (time.monotonic(), mine)
        return mine

    def is_mine(self, req: dict[str, Any]) -> bool:
        """Whether a request comes from this server's local store (its drafts): by the user's
        name on JupyterHub (one Unix account may serve everyone), else by the Unix account."""
        if req.get("source", {}).get("root") != str(self.svc.local.root):
            return False
        if os.environ.get("JUPYTERHUB_USER"):
            return req.get("requester") == self.svc.user
        return req.get("account") == audit.account() or req.get("requester") == self.svc.user

    def context(self) -> DecorateContext:
        """What decorating views needs, read once for a whole listing: this user's latest
        request from each draft (None: withdrawn or dismissed) and whether they may approve."""
        requests: dict[str, dict[str, Any] | None] = {}
        for req in self.by_source():
            src = req["source"]
            name = src.get("name")
            if src.get("scope") != "local" or name in requests:
                continue  # the newest request from a draft is the one shown
            st = req["_status"]
            if st["status"] == "withdrawn" or st.get("dismissed"):
                requests[name] = None
                continue
            requests[name] = {
                "id": req["id"],
                "status": st["status"],
                "detail": st["detail"],
                "error": st["error"],
                "version": req["version"],
            }
        approve = self.can_approve() if self.svc.shared else (False, NO_SHARED)
        return DecorateContext(requests, approve)

    def decorate(
        self, view: dict[str, Any], context: DecorateContext | None = None
    ) -> dict[str, Any]:
        """Add ``lifecycle`` {status, detail, request} and the publishing actions to a view
        (``context``: from :meth:`context`, once for many views)."""
        context = context or self.context()
        status, detail, request = _base_lifecycle(view), None, None
        if status == "failed" and view.get("version"):
            detail = f"in use: v{view['version']}"
        if view.get("scope") == "local" and view.get("managed", True):
            request = context.requests.get(view["name"])
            if request is not None:
                st = request["status"]
                if status == "draft" and st in ("pending", "outdated", "publishing"):
                    status, detail = "pending", request["detail"] or request["error"]
                elif status == "draft" and st == "rejected":
                    status, detail = "rejected", request["detail"]
        view["lifecycle"] = {"status": status, "detail": detail, "request": request}
        can, why = context.approve
        view["actions"].update(
            publish_actions(view, request, self.svc.shared is not None, None if can else why)
        )
        return view


@dataclass(frozen=True)
class DecorateContext:
    """The inputs of :meth:`Publishing.decorate` that are the same for every view."""

    requests: dict[str, dict[str, Any] | None]  # draft name -> its latest request's summary
    approve: tuple[bool, str]  # may this user approve, and why (not)


def _base_lifecycle(view: dict[str, Any]) -> str:
    status = view.get("status")
    if status in ("saved", "building", "failed"):
        return status
    if view.get("scope") == "shared" and view.get("managed", True):
        return "published"
    return "draft"
