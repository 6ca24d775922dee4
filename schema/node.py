"""Relay global object identification: the `Node` interface and the ids it carries.

Every type a normalized cache stores implements `Node`, and its `id` (and every field
that refers to such an object by id) is a global id minted by `node_id`. The root
fields `node(id:)` and `nodes(ids:)` are in `schema.root.node`.
"""

from __future__ import annotations

import uuid

import strawberry

from resolvers.ids import global_id

ID_DESCRIPTION = "Opaque, stable global id; `node(id:)` reads the object back by it."


def node_id(type_name: str, key: uuid.UUID | int) -> strawberry.ID:
    """The global id of the `type_name` object whose key is `key`."""
    return strawberry.ID(global_id(type_name, key))


@strawberry.interface(
    description="An object with a stable global id (Relay global object identification): "
    "a normalized cache keys it by `id`, and `node(id:)` refetches it."
)
class Node:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
