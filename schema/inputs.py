"""What input objects share: telling the fields a client set from those it omitted."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry


def set_fields(input: Any) -> dict[str, Any]:
    """The fields of a Strawberry input the client set (to a value or to null), by
    Python name, in declaration order; omitted ones (`strawberry.UNSET`) are left out."""
    values = {f.name: getattr(input, f.name) for f in dataclasses.fields(input)}
    return {name: value for name, value in values.items() if value is not strawberry.UNSET}
