"""Domain exceptions raised by repository functions (see the tree in `db/__init__`)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An expected failure: carries a machine-readable `code` and the input `field`."""

    default_code = "INVALID"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.details = details


class NotFound(DomainError):
    default_code = "NOT_FOUND"


class NotAllowed(DomainError):
    default_code = "NOT_ALLOWED"


class InvalidInput(DomainError):
    default_code = "INVALID"
