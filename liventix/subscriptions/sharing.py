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
    newcomer joins at once and receives the latest result as its first message, recast
    as a snapshot by `snapshot` (the fields of the root object that say why a result
    was sent: a newcomer must see "this is the current state", not the change that
    produced it); an unsent older result is replaced by a newer one on slow
    connections, except a member's first message, which is always delivered;
  - ``"live"``: results are events (new and deleted posts); a newcomer joins at once and
    receives the events from then on, as a fresh execution would. If one of the
    `replay_args` is given (e.g. `after`, a cursor to replay from), it is treated as
    ``"first"``;
  - ``"first"`` (also the default for unregistered fields): only until the first result,
    since that result may be a snapshot a newcomer would miss.

Unregistered subscriptions are shared only by operations of the same viewer, and only
until their first result.

Why a state group's latest result is a correct first message for a newcomer: the
newcomer becomes a member synchronously, between two results, so every change the
execution processes later reaches it too (nothing committed after its snapshot is
missed), and the execution itself never goes back (tier versions make it skip
notifications older than what it has sent), so neither does the newcomer. It costs no
query: the recast payload is built once per result, and only if someone joins.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import orjson
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
    snapshot: tuple[tuple[str, object], ...] = ()
    """For ``join="state"``: (field of the root object, value) pairs that a newcomer's
    first message shows instead of the latest result's (GraphQL field names)."""


SHARED_SUBSCRIPTIONS: dict[str, Sharing] = {
    "tierAvailability": Sharing(
        public=True,
        join="state",
        snapshot=(("reason", "SNAPSHOT"), ("changedTierId", None)),
    ),
    "eventFeed": Sharing(public=True, join="live", replay_args=frozenset({"after"})),
    # Organizer/admin only, so never public: shared by one viewer's identical
    # subscriptions; across viewers the counts are read once per event anyway
    # (`resolvers.console_counter`).
    "eventConsoleCounts": Sharing(join="state", snapshot=(("reason", "SNAPSHOT"),)),
}
"""Root subscription fields (GraphQL names) and how their executions may be shared."""

_TYPENAME = Sharing(public=True, join="state")


@dataclass(frozen=True, slots=True)
class Recast:
    """Response values to overwrite in a result: ``data[root][key] = value``.

    Keys are *response* keys (aliases included), resolved from the document once, so
    recasting a serialized result needs no GraphQL execution. A key the result lacks
    (a skipped field, a null root) is left alone.
    """

    fields: tuple[tuple[str, str, object], ...] = ()

    def apply(self, payload: str) -> str:
        """`payload` (a serialized `{"data": ...}` result) with the values overwritten."""
        if not self.fields:
            return payload
        body = orjson.loads(payload)
        data = body.get("data")
        for root, key, value in self.fields:
            target = data.get(root) if isinstance(data, dict) else None
            if isinstance(target, dict) and key in target:
                target[key] = value
        return orjson.dumps(body).decode()


NO_RECAST = Recast()


@dataclass(frozen=True, slots=True)
class OperationShape:
    """The parts of a document that decide sharing: operation kind and root fields,
    and how a newcomer's first message is recast as a snapshot."""

    kind: str
    root_fields: tuple[FieldNode, ...]
    snapshot: Recast = NO_RECAST


@dataclass(frozen=True, slots=True)
class Plan:
    """How one subscribe request is executed: shared (with this scope) or alone, and
    (``join="state"``) how a newcomer's first message is made a snapshot."""

    shareable: bool
    public: bool = False
    join: Join = "first"
    snapshot: Recast = NO_RECAST


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
    snapshot = _snapshot_recast(fields, fragments)
    if snapshot is None:
        return None
    return OperationShape(operations[0].operation.value, tuple(fields), snapshot)


def _snapshot_recast(
    roots: list[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> Recast | None:
    """Where the registered `snapshot` fields of each root field are in the response
    (None when a selection cannot be analysed)."""
    fields: dict[tuple[str, str], object] = {}
    for root in roots:
        sharing = SHARED_SUBSCRIPTIONS.get(root.name.value)
        if sharing is None or not sharing.snapshot or root.selection_set is None:
            continue
        wanted = dict(sharing.snapshot)
        children: list[FieldNode] = []
        if not _collect(root.selection_set, fragments, children, set()):
            return None
        root_key = _response_key(root)
        for child in children:
            if child.name.value in wanted:
                fields[(root_key, _response_key(child))] = wanted[child.name.value]
    return Recast(tuple((r, k, v) for (r, k), v in fields.items())) if fields else NO_RECAST


def _response_key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


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
    join = joins.pop()
    snapshot = shape.snapshot if join == "state" else NO_RECAST
    return Plan(shareable=True, public=public, join=join, snapshot=snapshot)


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
