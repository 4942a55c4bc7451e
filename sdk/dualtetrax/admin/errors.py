"""Typed errors of the admin API. Each names what went wrong and what to do next (``hint``)."""

from __future__ import annotations


class AdminError(Exception):
    """An admin operation (publish, rollout change) did not happen."""

    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.detail = message
        if hint is not None:
            self.hint = hint
        super().__init__(f"{message} {self.hint}".strip())


class RpcError(AdminError):
    """The database refused an RPC. ``code`` is the SQLSTATE (docs/schema.md, Errors)."""

    def __init__(self, function: str, message: str, *, code: str | None = None, detail: str | None = None,
                 hint: str | None = None) -> None:
        self.function = function
        self.code = code
        self.field = detail
        super().__init__(message, hint=hint)


class StorageError(AdminError):
    """The object store refused an upload or delete."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        self.status = status
        super().__init__(message, hint=hint)


class ObjectExistsError(StorageError):
    """An object already exists at the path (uploads never overwrite)."""

    hint = "A binary for this model and version was already uploaded; publish a new version instead."


class VersionMismatchError(AdminError, ValueError):
    """The version given on the command line is not the version inside the image."""

    hint = "The device reports the version from the image's app description; build the image with that version."


class DuplicateVersionError(AdminError):
    """This model already has this version (or its binary) in the registry."""

    hint = "Versions are immutable once registered: bump the version and build a new image."


class RegistrationError(AdminError):
    """The binary was uploaded but the registry refused the row; the upload was removed again."""

    def __init__(self, message: str, *, cause: RpcError) -> None:
        self.cause = cause
        super().__init__(message, hint=cause.hint or None)
