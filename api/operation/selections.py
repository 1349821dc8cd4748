"""A cheap count of a query's selections, refused before validation runs.

Validation is not linear in a document's size. graphql-core compares every
pair of fields that answer under the same response name (quadratic: 300
copies of ``articles { totalCount }`` cost half a second), and strawberry's
depth and alias limiters expand fragment spreads afresh each time they meet
one (exponential: 21 fragments that each spread the previous one twice, 820
bytes in all, cost 3 s, and every further one doubles it). The token limit
bounds the text, not this.

This walk expands every fragment spread in place, as validation and execution
do, but stops as soon as it has counted ``max_selections`` of them, so it
costs at most that many steps whatever the document. It refuses:

* more than ``max_selections`` selections (fields, fragment spreads, inline
  fragments; a fragment's selections count each time it is spread), which
  bounds the limiters' expansion and all that runs per selection;
* one field selected more than ``max_repeats`` times at the same place (the
  same response path), which bounds the pairs graphql-core compares to about
  ``max_repeats × max_selections / 2``;
* a spread of a fragment the document does not define (strawberry's depth
  limiter fails on one with a KeyError before validation can refuse it).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from api.operation.request import Operation, Refused

#: The code clients already get for a query that fails validation.
CODE = "GRAPHQL_VALIDATION_FAILED"
#: Longest piece of the client's text (a field path) quoted in a message.
QUOTED_CHARS = 80


class _Stop(Exception):
    """Internal: raised by the walk to stop at the first problem found."""


def check_selections(
    document: DocumentNode, max_selections: int, max_repeats: int
) -> GraphQLError | None:
    """The error refusing ``document``, or None if it is within both limits."""
    try:
        _Walk(document, max_selections, max_repeats).run()
    except _Stop as refused:
        return GraphQLError(str(refused), extensions={"code": CODE})
    return None


class _Walk:
    def __init__(self, document: DocumentNode, max_selections: int, max_repeats: int) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operations = [
            d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        self.max_selections = max_selections
        self.max_repeats = max_repeats
        self.selections = 0
        # A response path is numbered by (its parent's number, response name);
        # each root starts its own paths, since only fields of one operation
        # are compared with each other.
        self.paths: dict[tuple[int, str], int] = {}
        self.parents: list[tuple[int, str]] = []
        self.repeats: list[int] = []

    def run(self) -> None:
        for root in self.roots():
            self.walk(root.selection_set, self.new_path(-1, ""))

    def roots(self) -> Iterator[OperationDefinitionNode | FragmentDefinitionNode]:
        """Every operation, then every fragment no operation spreads: validation
        looks at those too (and refuses them, but only after comparing their
        fields). Fragments that are spread are walked where they are spread."""
        yield from self.operations
        spread: set[str] = set()
        pending = [o.selection_set for o in self.operations]
        while pending:
            for name in _spread_names(pending.pop()):
                if name not in spread and name in self.fragments:
                    spread.add(name)
                    pending.append(self.fragments[name].selection_set)
        yield from (f for name, f in self.fragments.items() if name not in spread)

    def walk(self, selection_set: SelectionSetNode, root: int) -> None:
        # Iterative, since spreads can nest deeper than Python's recursion
        # limit. Entering a fragment pushes its name, popped to leave it once
        # all it holds is walked, so a fragment is never expanded inside itself
        # (a cycle, which validation reports).
        entered: set[str] = set()
        stack: list[tuple[SelectionSetNode, int, str | None] | str] = [(selection_set, root, None)]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                entered.remove(item)
                continue
            selections, path, fragment_name = item
            if fragment_name is not None:
                entered.add(fragment_name)
                stack.append(fragment_name)
            for selection in selections.selections:
                self.count()
                if isinstance(selection, FieldNode):
                    name = (selection.alias or selection.name).value
                    field_path = self.child(path, name)
                    if selection.selection_set is not None:
                        stack.append((selection.selection_set, field_path, None))
                elif isinstance(selection, InlineFragmentNode):
                    stack.append((selection.selection_set, path, None))
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is None:
                        # Refused here, as validation would: strawberry's depth
                        # limiter, which runs before that rule, fails on it.
                        raise _Stop(f"Unknown fragment '{_quoted(name)}'.")
                    if name not in entered:
                        stack.append((fragment.selection_set, path, name))

    def count(self) -> None:
        self.selections += 1
        if self.selections > self.max_selections:
            raise _Stop(
                f"The query has more than {self.max_selections} selections once its "
                "fragments are expanded (each field, inline fragment and fragment spread "
                "counts, and a fragment's selections count each time it is spread). "
                "Ask for fewer fields, or split the query."
            )

    def child(self, parent: int, name: str) -> int:
        path = self.paths.get((parent, name))
        if path is None:
            path = self.paths[parent, name] = self.new_path(parent, name)
        self.repeats[path] += 1
        if self.repeats[path] > self.max_repeats:
            raise _Stop(
                f"'{self.describe(path)}' is selected more than {self.max_repeats} times. "
                "GraphQL merges repeats of a field into one answer: select it once, "
                "or give each copy its own alias."
            )
        return path

    def new_path(self, parent: int, name: str) -> int:
        self.parents.append((parent, name))
        self.repeats.append(0)
        return len(self.parents) - 1

    def describe(self, path: int) -> str:
        names: list[str] = []
        parent, name = self.parents[path]
        while parent >= 0:
            names.append(name)
            parent, name = self.parents[parent]
        return _quoted(".".join(reversed(names)))


def _quoted(text: str) -> str:
    """The client's own text, shortened: it can be as long as the request."""
    return text if len(text) <= QUOTED_CHARS else "…" + text[-QUOTED_CHARS:]


def _spread_names(selection_set: SelectionSetNode) -> Iterator[str]:
    """The fragments spread anywhere inside a selection set (not through them)."""
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                pending.append(selection.selection_set)


class LimitSelections:
    """Step, before validation: refuse a document over either limit, so that no
    validation rule ever sees it. A document already found valid is not
    walked again."""

    def __init__(self, max_selections: int, max_repeats: int) -> None:
        self.max_selections = max_selections
        self.max_repeats = max_repeats

    def __call__(self, op: Operation) -> None:
        if op.known or op.document is None:
            return
        error = check_selections(op.document, self.max_selections, self.max_repeats)
        if error is not None:
            raise Refused(error)
