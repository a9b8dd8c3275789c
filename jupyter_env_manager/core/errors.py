"""Domain errors of the core. Each door (REST, magics, CLI) maps them to its own world once."""

from __future__ import annotations


class EnvManagerError(Exception):
    """Base class: ``message`` is shown to users as is."""

    status = 500

    def __init__(self, message: str, *, field: str | None = None, item: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.item = item

    def to_dict(self) -> dict[str, str]:
        body = {"message": self.message}
        if self.field:
            body["field"] = self.field
        if self.item is not None:
            body["item"] = self.item
        return body


class ValidationError(EnvManagerError):
    """Bad input: a name, a package spec, a body field. Nothing was created."""

    status = 400


class Forbidden(EnvManagerError):
    """The user may not change this store or environment (file permissions say so)."""

    status = 403


class NotFound(EnvManagerError):
    status = 404


class Conflict(EnvManagerError):
    """The request clashes with the current state (name taken, a build already running)."""

    status = 409


class KernelError(EnvManagerError):
    """One environment's kernelspec could not be written; the message says why."""

    status = 409


class BuildFailed(Exception):
    """A build step failed (in a worker); the message is shown as the build's error."""
