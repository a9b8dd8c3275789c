"""The commands of publishing with approval: the requester's ``submit`` and ``withdraw``, the
approver's ``requests``, ``review``, ``approve`` and ``reject``, and the ``audit`` log. Standard
library only at the top (see :mod:`.commands`)."""

from __future__ import annotations

from .render import Result
from .targets import scope_of


def cmd_submit(service, args, progress) -> Result:
    req = service.publishing.submit(scope_of(args), args.name, args.reason)
    return Result(
        "review", req, f"✓ submitted {args.name} v{req['version']} as request {req['id']}"
    )


def cmd_requests(service, args, progress) -> Result:
    data = service.publishing.list_requests(args.status)
    return Result("requests", data, "" if data["requests"] else "No publish requests.")


def cmd_review(service, args, progress) -> Result:
    return Result("review", service.publishing.get(args.id))


def cmd_approve(service, args, progress) -> Result:
    req = service.publishing.approve(args.id)
    ok = req["status"] == "published"
    message = (
        f"✓ request {req['id']} published as shared/{req['name']} ({req['detail']})"
        if ok
        else f"✗ request {req['id']} was not published: {req.get('error') or req['status']}"
    )
    return Result("review", req, message, ok=ok)


def cmd_reject(service, args, progress) -> Result:
    req = service.publishing.reject(args.id, args.reason)
    return Result("review", req, f"✓ request {req['id']} rejected: {args.reason}")


def cmd_withdraw(service, args, progress) -> Result:
    req = service.publishing.withdraw(args.id)
    return Result("review", req, f"✓ request {req['id']} {req['status']}")


def cmd_audit(service, args, progress) -> Result:
    data = service.publishing.events(args.request)
    return Result("audit", data, "" if data["events"] else "No events yet.")


PUBLISH_COMMANDS = {
    "submit": cmd_submit,
    "requests": cmd_requests,
    "review": cmd_review,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "withdraw": cmd_withdraw,
    "audit": cmd_audit,
}
