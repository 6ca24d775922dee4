"""Operations read from a folder of `.graphql` files, printed the way clients hash them,
for the allow-list of persisted queries (`liventix persisted-queries register`).

A client hashes a printed document, not a file: graphql-js's `print` (graphql-core's
`print_ast` prints the same text) of one operation followed by the fragments it uses.
Each operation gives two documents, both registered:

- **as written**: what a client sends that does not rewrite documents (Apollo Client
  with `addTypename: false`, urql without a cache exchange, `fetch` with a hash);
- **with __typename**: as Apollo Client's InMemoryCache rewrites it before the
  persisted-queries link hashes it (`addTypenameToDocument`): `__typename` appended
  to every selection set except an operation's own, unless the set already selects a
  field whose name starts with `__` or is the selection of a field marked `@export`.

Fragments are shared by the whole folder (their names must be unique in it), as a
bundler resolves `#import`s. A document is the operation, then the fragments it uses in
the order graphql-tag's loader emits a named operation: those the operation spreads, in
order of first use, then those these spread, and so on. Write each file with the
operation first and its fragments after it, in that order, and every tool chain prints
the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    parse,
    print_ast,
    specified_rules,
    validate,
    visit,
)
from graphql.language import Node
from strawberry import Schema
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from liventix.persisted_queries import sha256_hex

AS_WRITTEN = "as written"
WITH_TYPENAME = "with __typename"
_TYPENAME = FieldNode(name=NameNode(value="__typename"))


class OperationFileError(Exception):
    """A file or operation that cannot be registered; the message is one line naming
    the file (and the operation)."""

    def __init__(self, path: Path, message: str, operation: str | None = None) -> None:
        where = f"{path}: operation {operation}" if operation else str(path)
        super().__init__(f"{where}: {' '.join(message.split())}")


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a file, with the fragments it uses (in the order clients print)."""

    path: Path
    name: str | None
    document: DocumentNode

    @property
    def label(self) -> str:
        return self.name or "(anonymous)"


@dataclass(frozen=True, slots=True)
class PrintedDocument:
    """A document as one kind of client sends it: its text and the hash of the text."""

    operation: Operation
    variant: str
    text: str

    @property
    def hash(self) -> str:
        return sha256_hex(self.text)


def read_operations(folder: Path) -> list[Operation]:
    """Every operation in every `.graphql` file under `folder` (sorted by path, then in
    file order). Raises `OperationFileError` for a file that does not parse, a fragment
    name defined twice, or a folder without operations."""
    if not folder.is_dir():
        raise OperationFileError(folder, "not a folder")
    operations: list[tuple[Path, OperationDefinitionNode]] = []
    fragments: dict[str, FragmentDefinitionNode] = {}
    defined_in: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.graphql")):
        try:
            document = parse(path.read_text(encoding="utf-8"), no_location=True)
        except GraphQLError as error:
            raise OperationFileError(path, error.message) from None
        except (OSError, UnicodeDecodeError) as error:
            raise OperationFileError(path, str(error)) from None
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                operations.append((path, definition))
            elif isinstance(definition, FragmentDefinitionNode):
                name = definition.name.value
                if name in fragments:
                    raise OperationFileError(
                        path, f"fragment {name} is defined again (first in {defined_in[name]})"
                    )
                fragments[name] = definition
                defined_in[name] = path
            # Type definitions and extensions (a client's local schema) are not sent.
    if not operations:
        raise OperationFileError(folder, "no operations in its .graphql files")
    return [
        Operation(
            path,
            operation.name.value if operation.name else None,
            DocumentNode(definitions=(operation, *_used_fragments(operation, fragments))),
        )
        for path, operation in operations
    ]


def printed_documents(operation: Operation) -> list[PrintedDocument]:
    """The operation as written and with `__typename` (one, if they print the same)."""
    written = print_ast(operation.document)
    typed = print_ast(add_typename(operation.document))
    documents = [PrintedDocument(operation, AS_WRITTEN, written)]
    if typed != written:
        documents.append(PrintedDocument(operation, WITH_TYPENAME, typed))
    return documents


def add_typename(document: DocumentNode) -> DocumentNode:
    """`document` as Apollo Client's `addTypenameToDocument` rewrites it (module docstring)."""
    result: DocumentNode = visit(document, _AddTypename())
    return result


class _AddTypename(Visitor):
    def enter_selection_set(
        self, node: SelectionSetNode, _key: Any, parent: Any, *_: Any
    ) -> SelectionSetNode | None:
        if isinstance(parent, OperationDefinitionNode):
            return None
        if any(
            isinstance(selection, FieldNode) and selection.name.value.startswith("__")
            for selection in node.selections
        ):
            return None
        if isinstance(parent, FieldNode) and any(
            directive.name.value == "export" for directive in parent.directives or ()
        ):
            return None
        return SelectionSetNode(selections=(*node.selections, _TYPENAME))


def _used_fragments(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> list[FragmentDefinitionNode]:
    """The fragments `operation` uses, directly or not, in graphql-tag's order (see the
    module docstring). One it spreads but no file defines is left out: validation then
    names it."""
    used: dict[str, None] = {}
    level = _spreads(operation)
    while level:
        following: dict[str, None] = {}
        for name in level:
            if name not in used:
                used[name] = None
                if name in fragments:
                    following.update(_spreads(fragments[name]))
        level = following
    return [fragments[name] for name in used if name in fragments]


def _spreads(node: Node) -> dict[str, None]:
    """Names of the fragments spread in `node`, in order of first appearance."""
    names: dict[str, None] = {}

    def walk(current: Node) -> None:
        if isinstance(current, FragmentSpreadNode):
            names[current.name.value] = None
        selection_set = getattr(current, "selection_set", None)
        if selection_set is not None:
            for selection in selection_set.selections:
                walk(selection)

    walk(node)
    return names


def validation_errors(schema: Schema, text: str) -> list[GraphQLError]:
    """What the API would refuse in `text` before running it: parse errors (over the
    token limit included), then graphql-core's validation with the rules the schema's
    extensions add (depth, aliases, cost, storable text)."""
    extensions = schema.get_extensions()
    max_tokens = next(
        (e.max_token_count for e in extensions if isinstance(e, MaxTokensLimiter)), None
    )
    try:
        document = parse(text, max_tokens=max_tokens)
    except GraphQLError as error:
        return [error]
    rules: list[type[ASTValidationRule]] = [*specified_rules]
    for extension in extensions:
        if isinstance(extension, AddValidationRules):
            rules.extend(extension.validation_rules)
    rules += [MaybeNullValidationRule, OneOfInputValidationRule]
    return validate(schema._schema, document, rules)


def documents_to_register(operations: list[Operation], schema: Schema) -> list[PrintedDocument]:
    """Every printed document of `operations`, each validated against `schema`; raises
    `OperationFileError` for the first that the API would refuse."""
    documents = []
    for operation in operations:
        for document in printed_documents(operation):
            errors = validation_errors(schema, document.text)
            if errors:
                raise OperationFileError(operation.path, errors[0].message, operation.label)
            documents.append(document)
    return documents
