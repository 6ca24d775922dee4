"""The schema as a product: the committed SDL is the code's, and every public type,
field, argument and enum value says what it is."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    specified_scalar_types,
)
from graphql.type.introspection import introspection_types

from liventix.cli import main, schema_sdl
from schema import build_schema

SDL_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"
REGENERATE = "regenerate it with `liventix schema > schema.graphql`"


def test_committed_sdl_is_the_code_schema() -> None:
    """schema.graphql (what clients and reviewers read) is exactly what the code builds."""
    assert SDL_FILE.exists(), f"{SDL_FILE.name} is missing: {REGENERATE}"
    committed = SDL_FILE.read_text(encoding="utf-8")
    built = schema_sdl()
    if committed != built:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                built.splitlines(keepends=True),
                fromfile="schema.graphql (committed)",
                tofile="schema (code)",
                n=1,
            )
        )
        pytest.fail(
            f"{SDL_FILE.name} differs from the schema the code builds; {REGENERATE}\n"
            + diff[:4000],
            pytrace=False,
        )


def test_cli_prints_the_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    """`liventix schema` prints the SDL and needs no database."""
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_sdl()


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Every public type, field, input field, argument and enum value without a
    description (GraphQL's introspection types and built-in scalars excepted)."""
    missing: list[str] = []
    for name, named in sorted(schema.type_map.items()):
        if name in introspection_types or name in specified_scalar_types:
            continue
        if not named.description:
            missing.append(f"type {name}")
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in named.fields.items():
                if not field.description:
                    missing.append(f"field {name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"argument {name}.{field_name}({arg_name})")
        if isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                if not value.description:
                    missing.append(f"enum value {name}.{value_name}")
    return missing


def test_every_public_element_is_described() -> None:
    """Partners read the schema in the playground: nothing public goes undocumented."""
    missing = undescribed(build_schema()._schema)
    assert not missing, (
        f"{len(missing)} schema elements have no description "
        "(strawberry's `description=`):\n  " + "\n  ".join(missing)
    )


def test_the_walk_sees_a_missing_description() -> None:
    """The check above can fail: a schema with an undescribed field is caught."""

    @strawberry.type(description="A probe.")
    class Query:
        described: int = strawberry.field(description="Has one.")
        bare: int

    probe = strawberry.Schema(query=Query)
    assert undescribed(probe._schema) == ["field Query.bare"]
