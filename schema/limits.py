"""How deep and how costly one operation may be: validation rules, cached with the document.

Both rules read the document alone, so the validation cache may keep their verdict:

- **Depth** counts every field, introspection included (Strawberry's `QueryDepthLimiter`
  skips fields starting with ``__`` and everything below them, so an ``ofType`` chain
  of any depth passed). A root ``__schema``/``__type`` field may go as deep as the
  standard introspection query needs (`INTROSPECTION_DEPTH`, GraphiQL's own query),
  no deeper; every other field is held to the configured depth.
- **Cost** estimates the fields a response may hold: each field costs 1, and a list
  multiplies the cost of its selection by its size: the literal ``first``/``last``/
  ``limit`` argument, `VARIABLE_PAGE_SIZE` when that argument is a variable (its value
  is not known at validation time; resolvers refuse more than that), the argument's
  default when it is left out, the number of ids of ``nodes(ids:)``, and
  `DEFAULT_LIST_SIZE` for a list without such an argument. A connection's size applies
  to the list inside it (``edges``), once.
  Introspection fields count 1 each: the schema bounds their answer. Over the limit the
  operation is refused with code ``QUERY_TOO_COSTLY`` before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    get_introspection_query,
    get_named_type,
    parse,
)
from graphql.validation import ValidationRule

SIZE_ARGUMENTS = ("first", "last", "limit")
LIST_ARGUMENTS = ("ids",)  # a list argument whose length is the size (`nodes(ids:)`)
VARIABLE_PAGE_SIZE = 100  # the largest page the resolvers serve (`first` 1-100)
DEFAULT_LIST_SIZE = 10  # assumed length of a list without a size argument
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"


def _root_fields(
    selection_set: SelectionSetNode, context: ValidationContext
) -> Iterator[FieldNode]:
    """The fields of a root selection, through fragments (not into fields)."""
    stack, seen = list(selection_set.selections), set()
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode):
            yield node
        elif isinstance(node, InlineFragmentNode):
            stack.extend(node.selection_set.selections)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)
            fragment = context.get_fragment(node.name.value)
            if fragment is not None:
                stack.extend(fragment.selection_set.selections)


class _Depths:
    """Depth of selections: a leaf field is 0, a field with a selection 1 + its deepest
    child (Strawberry's measure, so MAX_QUERY_DEPTH means what it meant). Fragments are
    measured once each, so repeated spreads cost no time; a cycle counts 0 (the
    NoFragmentCycles rule refuses it)."""

    def __init__(self, context: ValidationContext) -> None:
        self.context = context
        self.fragments: dict[str, int] = {}

    def of_field(self, node: FieldNode) -> int:
        if node.selection_set is None:
            return 0
        return 1 + self.of_selections(node.selection_set)

    def of_selections(self, selection_set: SelectionSetNode) -> int:
        deepest = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                deepest = max(deepest, self.of_field(node))
            elif isinstance(node, InlineFragmentNode):
                deepest = max(deepest, self.of_selections(node.selection_set))
            elif isinstance(node, FragmentSpreadNode):
                deepest = max(deepest, self.of_fragment(node.name.value))
        return deepest

    def of_fragment(self, name: str) -> int:
        if name not in self.fragments:
            self.fragments[name] = 0  # in progress: a cycle counts 0
            fragment = self.context.get_fragment(name)
            if fragment is not None:
                self.fragments[name] = self.of_selections(fragment.selection_set)
        return self.fragments[name]


@cache
def introspection_depth() -> int:
    """How deep the standard introspection query goes (GraphiQL sends the same one)."""
    document = parse(
        get_introspection_query(
            descriptions=True,
            specified_by_url=True,
            directive_is_repeatable=True,
            schema_description=True,
            input_value_deprecation=True,
        )
    )
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }

    def depth(selection_set: SelectionSetNode) -> int:
        deepest = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode) and node.selection_set is not None:
                deepest = max(deepest, 1 + depth(node.selection_set))
            elif isinstance(node, FragmentSpreadNode):
                deepest = max(deepest, depth(fragments[node.name.value].selection_set))
        return deepest

    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return depth(operation.selection_set)


INTROSPECTION_DEPTH = introspection_depth()


def depth_limit_rule(max_depth: int) -> type[ValidationRule]:
    """A rule refusing operations deeper than `max_depth` (introspection: see module)."""
    introspection_limit = max(max_depth, INTROSPECTION_DEPTH)

    class DepthLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.depths = _Depths(context)

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            name = node.name.value if node.name else "anonymous"
            for field in _root_fields(node.selection_set, self.context):
                introspection = field.name.value in INTROSPECTION_ROOTS
                limit = introspection_limit if introspection else max_depth
                try:
                    too_deep = self.depths.of_field(field) > limit
                except RecursionError:  # fragments chained beyond Python's stack
                    too_deep = True
                if too_deep:
                    self.report_error(
                        GraphQLError(f"'{name}' exceeds maximum operation depth of {limit}", field)
                    )
                    return

    return DepthLimitRule


class _Costs:
    """Cost of selections (see the module docstring), fragments computed once per
    (fragment, pending size) so repeated spreads cost no time."""

    def __init__(self, context: ValidationContext) -> None:
        self.context = context
        self.fragments: dict[tuple[str, int | None, bool], int] = {}

    def of_selections(
        self,
        parent: GraphQLNamedType | None,
        selection_set: SelectionSetNode,
        pending: int | None,
        introspection: bool,
    ) -> int:
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self.of_field(parent, node, pending, introspection)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                typ = self.context.schema.get_type(condition.name.value) if condition else parent
                total += self.of_selections(typ, node.selection_set, pending, introspection)
            elif isinstance(node, FragmentSpreadNode):
                total += self.of_fragment(node.name.value, pending, introspection)
        return total

    def of_fragment(self, name: str, pending: int | None, introspection: bool) -> int:
        key = (name, pending, introspection)
        if key not in self.fragments:
            self.fragments[key] = 0  # in progress: a cycle counts 0
            fragment = self.context.get_fragment(name)
            if fragment is not None:
                typ = self.context.schema.get_type(fragment.type_condition.name.value)
                self.fragments[key] = self.of_selections(
                    typ, fragment.selection_set, pending, introspection
                )
        return self.fragments[key]

    def of_field(
        self,
        parent: GraphQLNamedType | None,
        node: FieldNode,
        pending: int | None,
        introspection: bool,
    ) -> int:
        if node.selection_set is None:
            return 1
        name = node.name.value
        introspection = introspection or name.startswith("__")
        field = None
        if not introspection and isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            field = parent.fields.get(name)
        if field is None:  # introspection, or a field validation refuses anyway
            return 1 + self.of_selections(None, node.selection_set, None, introspection)
        output = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        size = self._size(node, field.args)
        if isinstance(output, GraphQLList):
            multiplier = size or pending or DEFAULT_LIST_SIZE
            pending = None
        else:
            multiplier = 1
            pending = size or pending
        children = self.of_selections(
            get_named_type(output), node.selection_set, pending, introspection
        )
        return 1 + multiplier * children

    @staticmethod
    def _size(node: FieldNode, arguments: dict[str, Any]) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value in LIST_ARGUMENTS:
                if isinstance(argument.value, ListValueNode):
                    return len(argument.value.values)
                return VARIABLE_PAGE_SIZE
            if argument.name.value in SIZE_ARGUMENTS:
                if isinstance(argument.value, IntValueNode):
                    return max(int(argument.value.value), 0)
                return VARIABLE_PAGE_SIZE  # a variable: its value is not known yet
        for name in SIZE_ARGUMENTS:
            default = arguments[name].default_value if name in arguments else None
            if isinstance(default, int):
                return default
        return None


def operation_cost(context: ValidationContext, operation: OperationDefinitionNode) -> int:
    """The estimated cost of one operation of the document (see the module docstring)."""
    root = context.schema.get_root_type(operation.operation)
    return _Costs(context).of_selections(root, operation.selection_set, None, False)


def cost_limit_rule(max_cost: int) -> type[ValidationRule]:
    """A rule refusing operations whose estimated cost exceeds `max_cost`."""

    class CostLimitRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            try:
                cost = operation_cost(self.context, node)
            except RecursionError:  # fragments chained beyond Python's stack
                cost = max_cost + 1
            if cost > max_cost:
                name = f"'{node.name.value}'" if node.name else "The operation"
                self.report_error(
                    GraphQLError(
                        f"{name} may cost {cost}, more than the maximum of {max_cost}: "
                        "ask for smaller pages (first) or fewer nested lists.",
                        node,
                        extensions={"code": QUERY_TOO_COSTLY, "cost": cost, "maxCost": max_cost},
                    )
                )

    return CostLimitRule
