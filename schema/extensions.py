"""The schema's execution guards: size limits, text checks and caches, per operation.

In production (`build_extensions(production=True)`) three more: validation and
execution errors carry no "Did you mean ...?" suggestions (they would spell out the
schema that introspection hides), and `IntrospectionGuard` refuses ``__schema`` and
``__type`` to callers whose role may not explore the schema. Everywhere, queries and
mutations are stopped after a time limit (`ExecutionTimeout`), and every operation is
counted and timed for Prometheus (`schema.operation_metrics`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from functools import lru_cache, partial
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    validate,
)
from graphql.language import Node
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.graphql import OperationType

from schema.limits import INTROSPECTION_ROOTS, cost_limit_rule, depth_limit_rule
from schema.operation_metrics import OperationMetrics
from schema.text import StorableTextRule

INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
TIMEOUT = "TIMEOUT"
Validator = Callable[
    [GraphQLSchema, DocumentNode, tuple[type[ASTValidationRule], ...]], list[GraphQLError]
]


def build_extensions(
    *,
    max_depth: int,
    max_aliases: int,
    max_tokens: int,
    max_cost: int = 10000,
    production: bool = False,
    introspection_roles: Collection[str] = (),
    timeout_seconds: float | None = None,
) -> list[Any]:
    """Extension factories (a fresh instance per operation; the caches are shared).

    `production` hides suggestions and lets only `introspection_roles` introspect;
    `timeout_seconds` bounds each query's and mutation's execution."""
    # The limiters' rule classes are made once, here: the validation cache keys on the
    # rule classes, and a limiter built per operation makes new classes every time, so
    # every request would miss the cache and be validated again.
    rules = [
        depth_limit_rule(max_depth),
        cost_limit_rule(max_cost),
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
        StorableTextRule,
    ]
    extensions: list[Any] = [
        OperationMetrics,  # first: it sees the operation whole, every guard's refusal too
        partial(MaxTokensLimiter, max_token_count=max_tokens),
        partial(AddValidationRules, rules),
        partial(ParserCache, maxsize=1024),
        partial(ValidationCache, cached_validator(maxsize=1024, hide_suggestions=production)),
    ]
    if production:
        # After the validation cache: it sees the cached verdict and never changes it.
        extensions.append(partial(IntrospectionGuard, frozenset(introspection_roles)))
    if timeout_seconds is not None:
        extensions.append(partial(ExecutionTimeout, timeout_seconds))
    return extensions


def cached_validator(*, maxsize: int, hide_suggestions: bool) -> Validator:
    """Strawberry's validation (its own rules added), with graphql-core's
    `hide_suggestions`, remembered per (schema, document, rules)."""

    @lru_cache(maxsize=maxsize)
    def validate_document(
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        every_rule = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
        return validate(schema, document, every_rule, hide_suggestions=hide_suggestions)

    return validate_document


class ValidationCache(SchemaExtension):
    """Validation, cached (Strawberry's `ValidationCache`, which cannot hide
    suggestions). The cached list is shared: extensions must replace it, not append."""

    def __init__(self, validator: Validator) -> None:
        super().__init__()
        self.validator = validator

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        context.pre_execution_errors = self.validator(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


def introspects(document: DocumentNode) -> bool:
    """Whether the document asks for ``__schema`` or ``__type`` (``__typename`` is fine:
    clients add it everywhere). These fields exist only on the query root, so looking
    anywhere in the document is looking at every operation and fragment."""
    stack: list[Node] = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode) and node.name.value in INTROSPECTION_ROOTS:
            return True
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return False


class IntrospectionGuard(SchemaExtension):
    """Refuses introspection to a viewer whose role is not in `allowed_roles`, with code
    ``INTROSPECTION_DISABLED``. Runs per operation, after the validation cache: the
    cache keys on the document, not on who sends it, so the viewer is checked here."""

    def __init__(self, allowed_roles: frozenset[str]) -> None:
        super().__init__()
        self.allowed_roles = allowed_roles

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if not context.pre_execution_errors and document is not None and introspects(document):
            viewer = getattr(context.context, "viewer", None)
            role = str(getattr(viewer, "role", "anonymous"))
            if role not in self.allowed_roles:
                # A new list: the validation cache's own must not change.
                context.pre_execution_errors = [
                    GraphQLError(
                        "Introspection is disabled: sign in with a role allowed to explore "
                        "the schema, or read the published SDL.",
                        extensions={"code": INTROSPECTION_DISABLED},
                    )
                ]
        yield


class ExecutionTimeout(SchemaExtension):
    """Stops a query or mutation that runs longer than `seconds`: its tasks are
    cancelled (a transaction in progress rolls back, its connection goes back to the
    pool) and the client gets code ``TIMEOUT``. Subscriptions live as long as their
    client wants, so they are not timed."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.operation_type is OperationType.SUBSCRIPTION:
            yield
            return
        try:
            async with asyncio.timeout(self.seconds):
                yield
        except TimeoutError:
            raise GraphQLError(
                f"The operation took longer than {self.seconds:g} seconds and was stopped.",
                extensions={"code": TIMEOUT},
            ) from None
