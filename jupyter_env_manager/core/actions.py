"""What the user may do with an environment, and why not: computed here, shown by every door.

Each environment view carries ``actions``: ``{action: {"allowed": bool, "reason": str | None}}``.
The panel enables its buttons from these flags and shows the reason as the tooltip; the CLI and
the magics meet the same policy as the core's errors: a store the user may not change gives the
same sentence here as in the 403 (:meth:`.store.Store.write_denial`). The inputs are the view
(managed, status, version, kernel) and why the user may not change the environment's store, or
make an environment in the shared store (None: they may).
"""

from __future__ import annotations

from typing import Any

ACTIONS = (
    "build",
    "edit",
    "revert",
    "delete",
    "cancel",
    "copy_local",
    "copy_shared",
    "activate",
    "deactivate",
    "adopt",
    "export",
    # publishing with approval (:func:`publish_actions`, added by :mod:`.publishing`)
    "submit",
    "withdraw",
    "approve",
    "reject",
)

NOT_MANAGED = "Not managed by the environment manager: adopt it first"
BUSY = "Wait for the running build to finish"
NOT_BUILT = "Build it first: it has no working version yet"
NO_OTHER_VERSION = "There is no other version to revert to"


NO_SHARED = "No shared store is configured on the server"


def env_actions(
    view: dict[str, Any], denial: str | None, shared_denial: str | None
) -> dict[str, dict[str, Any]]:
    """The allowed actions of one environment view, each with the reason when not allowed.

    ``denial``: why the user may not change the environment's store (None: they may);
    ``shared_denial``: why they may not copy into the shared store (None: they may).
    """
    managed = view.get("managed", True)
    building = view.get("status") == "building"
    built = view.get("version") is not None
    writable = denial is None
    kernel = view.get("kernel") or {}
    read_only = denial or ""

    def first(*checks: tuple[bool, str]) -> str | None:
        for failed, reason in checks:
            if failed:
                return reason
        return None

    def change(*more: tuple[bool, str]) -> str | None:
        return first((not managed, NOT_MANAGED), (not writable, read_only), (building, BUSY), *more)

    to_shared = shared_denial
    reasons: dict[str, str | None] = {
        "build": change(),
        "edit": change(),
        "revert": change(
            (not built, NOT_BUILT),
            ((view.get("latest_build") or {}).get("version", 0) < 2, NO_OTHER_VERSION),
        ),
        "delete": change(),
        "cancel": first(
            (not building, "No build is running"),
            (not writable, read_only),
        )
        if managed
        else NOT_MANAGED,
        "copy_local": first(
            (not managed, NOT_MANAGED),
            (not built, NOT_BUILT),
        ),
        "copy_shared": first(
            (not managed, NOT_MANAGED),
            (not built, NOT_BUILT),
            (to_shared is not None, to_shared or ""),
        ),
        "activate": first(
            (managed and not built, NOT_BUILT),
            (bool(kernel.get("active")), "Its kernel is already in the launcher"),
        ),
        "deactivate": first((not kernel.get("active"), "It has no kernel in the launcher")),
        "adopt": first(
            (managed, "Already managed by the environment manager"),
            (not writable, read_only),
        ),
        "export": first((not managed, NOT_MANAGED)),
    }
    return {
        action: {"allowed": reason is None, "reason": reason} for action, reason in reasons.items()
    }


PUBLISH_ACTIONS = ("submit", "withdraw", "approve", "reject")
NO_REQUEST = "It has no open publish request"


def publish_actions(
    view: dict[str, Any],
    request: dict[str, Any] | None,
    shared: bool,
    approver_denial: str | None,
) -> dict[str, dict[str, Any]]:
    """Submit, withdraw, approve, reject for one environment view (see :mod:`.publishing`).

    ``request``: the latest request from this draft (``{"id", "status", ...}``) or None;
    ``approver_denial``: why the user may not approve (None: they may)."""
    status = (request or {}).get("status")
    local = view.get("scope") == "local"
    open_ = status in ("pending", "outdated")
    reasons: dict[str, str | None] = {
        "submit": _first(
            (not shared, NO_SHARED),
            (not local, "Only a draft of the local store is submitted for publishing"),
            (not view.get("managed", True), NOT_MANAGED),
            (view.get("status") == "building", BUSY),
            (view.get("version") is None, NOT_BUILT),
            (
                status in ("pending", "publishing"),
                f"Request {(request or {}).get('id')} is already {status}",
            ),
        ),
        "withdraw": _first((not (open_ or status == "rejected"), NO_REQUEST)),
        "approve": _first(
            (status != "pending", NO_REQUEST),
            (approver_denial is not None, approver_denial or ""),
        ),
        "reject": _first(
            (not open_, NO_REQUEST),
            (approver_denial is not None, approver_denial or ""),
        ),
    }
    return {a: {"allowed": r is None, "reason": r} for a, r in reasons.items()}


def _first(*checks: tuple[bool, str]) -> str | None:
    for failed, reason in checks:
        if failed:
            return reason
    return None
