"""What input objects share: telling the fields a client set from those it omitted,
and the plain value of an enum member."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import strawberry


def set_fields(input: Any) -> dict[str, Any]:
    """The fields of a Strawberry input the client set (to a value or to null), by
    Python name, in declaration order; omitted ones (`strawberry.UNSET`) are left out."""
    values = {f.name: getattr(input, f.name) for f in dataclasses.fields(input)}
    return {name: value for name, value in values.items() if value is not strawberry.UNSET}


def enum_value_of(member: Enum) -> str:
    """The value a schema enum member stands for (``TierStatus.ACTIVE`` → ``"active"``).

    A member declared with `strawberry.enum_value` (to give it a description) holds the
    plain value at run time, but type checkers see the `EnumValueDefinition` wrapper.
    """
    value: str = member.value
    return value
