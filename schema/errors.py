"""Typed errors shared by every feature, and the execution guards.

Expected failures are values: each feature's error type implements `UserError`, with a
machine-readable `code` enum of its own and the input `field` it concerns. Anything
else is unexpected: it is logged with its stack trace and request id, and the client
sees only "Unexpected error" and that request id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

log = logging.getLogger("liventix.graphql")


@strawberry.interface(description="An expected failure: switch on `code`, show `message`.")
class UserError:
    message: str
    field: str | None = strawberry.field(
        default=None, description="The input field the error concerns, if any."
    )


class ClientError(GraphQLError):
    """An error the client caused (bad auth, bad input shape): shown, not masked."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


class MaskUnexpectedErrors(SchemaExtension):
    """Masks errors that were not meant for the client and logs them with a request id."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        result.errors = [self._mask(error, request_id) for error in errors]  # type: ignore[union-attr]

    @staticmethod
    def _mask(error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, ClientError):
            return error  # validation/parse errors and deliberate client errors
        log.error(
            "unexpected error in %s (request %s)",
            ".".join(str(p) for p in error.path or ()),
            request_id,
            exc_info=original,
        )
        return GraphQLError(
            "Unexpected error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


def build_extensions(*, max_depth: int, max_aliases: int, max_tokens: int) -> list[Any]:
    """Extension factories (a fresh instance per operation; the caches are shared)."""
    # The limiters' rule classes are made once, here: the validation cache keys on the
    # rule classes, and a limiter built per operation makes new classes every time, so
    # every request would miss the cache and be validated again.
    limit_rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    return [
        partial(MaxTokensLimiter, max_token_count=max_tokens),
        partial(AddValidationRules, limit_rules),
        partial(ParserCache, maxsize=1024),
        partial(ValidationCache, maxsize=1024),
        MaskUnexpectedErrors,
    ]
