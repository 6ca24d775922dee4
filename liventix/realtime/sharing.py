"""Which subscriptions may share one execution, and with whom.

Over WebSocket, operations with the same document, operation name, variables and
*permission scope* run once and every member receives the same serialized result (the
way Hasura multiplexes live queries). The scope is the viewer (user id and role) unless
every root field of the subscription is registered below as **public** and the viewer
is anonymous or a plain user (organizers and admins may see more: hidden tiers, their
own draft events); then it is "public", and the shared execution runs as the anonymous
viewer.

Registering a root subscription field here asserts:

- `public=True`: what it yields does not depend on who asks, for everyone allowed to
  see it. When the anonymous execution fails before its first result (for example a
  draft event only its organizer may watch), signed-in members are retried in their
  own, viewer-scoped execution, so an organizer still sees their draft event.
- `join`: when a newcomer may join an execution that has already produced results:
  - ``"state"``: each result is the whole current state (e.g. tier availability); a
    newcomer joins at once and receives the latest result as its first message, and an
    unsent older result is replaced by a newer one on slow connections;
  - ``"live"``: results are events (new and deleted posts); a newcomer joins at once and
    receives the events from then on, as a fresh execution would. If one of the
    `replay_args` is given (e.g. `after`, a cursor to replay from), it is treated as
    ``"first"``;
  - ``"first"`` (also the default for unregistered fields): only until the first result,
    since that result may be a snapshot a newcomer would miss.

Unregistered subscriptions are shared only by operations of the same viewer, and only
until their first result.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSyntaxError,
    InlineFragmentNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
)

Join = Literal["state", "live", "first"]


@dataclass(frozen=True, slots=True)
class Sharing:
    public: bool = False
    join: Join = "first"
    replay_args: frozenset[str] = frozenset()


SHARED_SUBSCRIPTIONS: dict[str, Sharing] = {
    "tierAvailability": Sharing(public=True, join="state"),
    "eventFeed": Sharing(public=True, join="live", replay_args=frozenset({"after"})),
}
"""Root subscription fields (GraphQL names) and how their executions may be shared."""

_TYPENAME = Sharing(public=True, join="state")


@dataclass(frozen=True, slots=True)
class OperationShape:
    """The parts of a document that decide sharing: operation kind and root fields."""

    kind: str
    root_fields: tuple[FieldNode, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """How one subscribe request is executed: shared (with this scope) or alone."""

    shareable: bool
    public: bool = False
    join: Join = "first"


ALONE = Plan(shareable=False)
_CACHE_SIZE = 1024
_shapes: OrderedDict[tuple[str, str | None], OperationShape | None] = OrderedDict()


def shape_of(query: str, operation_name: str | None) -> OperationShape | None:
    """Parse once per distinct document (LRU); None when it cannot be analysed here
    (the execution then reports the error)."""
    key = (query, operation_name)
    if key in _shapes:
        _shapes.move_to_end(key)
        return _shapes[key]
    try:
        shape = _analyse(parse(query), operation_name)
    except (GraphQLSyntaxError, RecursionError):
        shape = None
    _shapes[key] = shape
    if len(_shapes) > _CACHE_SIZE:
        _shapes.popitem(last=False)
    return shape


def _analyse(document: DocumentNode, operation_name: str | None) -> OperationShape | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    fields: list[FieldNode] = []
    if not _collect(operations[0].selection_set, fragments, fields, set()):
        return None
    return OperationShape(operations[0].operation.value, tuple(fields))


def _collect(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    into: list[FieldNode],
    seen: set[str],
) -> bool:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            into.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            if not _collect(selection.selection_set, fragments, into, seen):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                return False
            seen.add(name)
            if not _collect(fragment.selection_set, fragments, into, seen):
                return False
    return True


def plan(query: str, operation_name: str | None, variables: dict[str, Any] | None) -> Plan:
    """The sharing plan for one subscribe request (queries and mutations run alone)."""
    shape = shape_of(query, operation_name)
    if shape is None or shape.kind != "subscription" or not shape.root_fields:
        return ALONE
    public = True
    joins: set[Join] = set()
    for field in shape.root_fields:
        name = field.name.value
        sharing = _TYPENAME if name == "__typename" else SHARED_SUBSCRIPTIONS.get(name)
        if sharing is None:
            public = False
            joins.add("first")
            continue
        public = public and sharing.public
        join = sharing.join
        if join == "live" and _gives_any(field, sharing.replay_args, variables or {}):
            join = "first"
        joins.add(join)
    if "first" in joins or len(joins) != 1:
        return Plan(shareable=True, public=public, join="first")
    return Plan(shareable=True, public=public, join=joins.pop())


def _gives_any(field: FieldNode, names: frozenset[str], variables: dict[str, Any]) -> bool:
    for argument in field.arguments or ():
        if argument.name.value not in names:
            continue
        value = argument.value
        if isinstance(value, NullValueNode):
            continue
        if isinstance(value, VariableNode) and variables.get(value.name.value) is None:
            continue
        return True
    return False
