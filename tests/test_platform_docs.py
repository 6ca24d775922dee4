"""The examples a new user pastes must work: every GraphQL block in the README and the
playground's prefilled query validate against the schema the API serves.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import parse, validate

from schema import build_schema

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "liventix" / "templates" / "graphiql.html"


def readme_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```graphql\n(.*?)```", readme, flags=re.DOTALL)


def playground_default_query() -> str:
    match = re.search(r"const defaultQuery = `(.*?)`;", TEMPLATE.read_text(), re.DOTALL)
    assert match is not None, "the template has no defaultQuery"
    return match.group(1).replace("\\`", "`")


@pytest.mark.parametrize(
    "document",
    [*readme_examples(), playground_default_query(), "subscription { clock(count: 5) }"],
)
def test_example_validates_against_the_schema(document: str) -> None:
    schema = build_schema()._schema
    errors = validate(schema, parse(document))
    assert errors == [], [e.message for e in errors]


def test_readme_shows_the_advertised_operations() -> None:
    text = "\n".join(readme_examples())
    for operation in ("events(first: 10)", "reserveTickets(", "tierAvailability("):
        assert operation in text, operation


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make serve")
    assert first_block.splitlines()[1].startswith("make test")
    for placeholder in ("flash_sale", "feed", "fanout", "notifications"):
        assert f"<!-- perf:{placeholder} -->" in readme
