"""Text PostgreSQL cannot store is refused at the door, for every string input.

PostgreSQL's `text` (and `jsonb`) cannot hold U+0000, and UTF-8 cannot encode a lone
surrogate (JSON can escape one: ``"\\ud800"``). Either would reach the database and fail
there as an internal error, after part of the work was done. So every string a request
carries is checked before anything runs, whatever its field: literals in the document
by a validation rule (cached with the document), variable values where graphql-core
coerces them (the executor's `build`). Both refuse with a request error naming the
argument or variable and the path inside it, code ``BAD_USER_INPUT``, and nothing
executes.

A custom `String`/`ID` scalar would be the natural place, but graphql-core 3.3 forbids
redefining the built-in scalars, and the SDL must keep saying `String` and `ID`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    ValueNode,
    VariableDefinitionNode,
)
from graphql.execution import Executor
from graphql.validation import ASTValidationRule
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

Path = tuple[str | int, ...]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What in `text` PostgreSQL cannot store, described for a message; None if all is fine."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "a NUL character (U+0000)"
    return f"an unpaired surrogate (U+{ord(char):04X})"


def find_in_value(value: object) -> tuple[Path, str] | None:
    """The first unstorable string in a decoded JSON value: its path and what is wrong.

    Iterative, so a deeply nested variable cannot exhaust the stack here."""
    stack: list[tuple[Path, object]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if (what := unstorable(item)) is not None:
                return path, what
        elif isinstance(item, Mapping):
            stack.extend(((*path, str(k)), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))
    return None


def find_in_literal(node: ValueNode) -> tuple[Path, str] | None:
    """The first unstorable string literal inside a value literal, as `find_in_value`."""
    stack: list[tuple[Path, ValueNode]] = [((), node)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, StringValueNode):
            if (what := unstorable(item.value)) is not None:
                return path, what
        elif isinstance(item, ObjectValueNode):
            stack.extend(((*path, f.name.value), f.value) for f in reversed(item.fields))
        elif isinstance(item, ListValueNode):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item.values))))
    return None


def refusal(subject: str, name: str, found: tuple[Path, str], node: Node) -> GraphQLError:
    """The request error for an unstorable string at `found` inside input `name`."""
    path, what = found
    where = name + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)
    return GraphQLError(
        f"Invalid value for {subject} '{where}': text may not contain {what}.",
        node,
        extensions={"code": "BAD_USER_INPUT"},
    )


class StorableTextRule(ASTValidationRule):
    """Refuses string literals PostgreSQL cannot store, in arguments and variable defaults."""

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        if (found := find_in_literal(node.value)) is not None:
            self.report_error(refusal("argument", node.name.value, found, node))

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: Any) -> None:
        default = node.default_value
        if default is not None and (found := find_in_literal(default)) is not None:
            name = "$" + node.variable.name.value
            self.report_error(refusal("the default of variable", name, found, node))


def check_variables(
    document: DocumentNode | None, operation_name: str | None, variables: Mapping[str, Any] | None
) -> GraphQLError | None:
    """A request error for the first variable of the operation whose value holds text
    PostgreSQL cannot store (variables the operation does not declare are ignored, as
    graphql-core ignores them)."""
    if document is None or not variables:
        return None
    operation = _operation(document, operation_name)
    definitions = (operation.variable_definitions or ()) if operation else ()
    for definition in definitions:
        name = definition.variable.name.value
        if name in variables and (found := find_in_value(variables[name])) is not None:
            return refusal("variable", "$" + name, found, definition)
    return None


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


class StorableTextExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, refusing unstorable text in variables where graphql-core
    coerces them: the error is a request error like a refused Int, on every transport
    (an `error` message over WebSocket, not a result)."""

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | Executor[Any]:
        error = check_variables(document, operation_name, raw_variable_values)
        if error is not None:
            return [error]
        return super().build(
            schema,
            document,
            root_value,
            context_value,
            raw_variable_values,
            operation_name,
            *args,
            **kwargs,
        )
