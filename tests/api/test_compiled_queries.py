"""Operations for the differential tests, generated from the schema: nested
selections, aliases, named and inline fragments, ``@skip``/``@include``,
every argument of every field (literals or variables, valid or not), drawn
from values of the corpus being served (its ids, topics, domains, words and
cursors) so that most operations find something and some are refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    Undefined,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from api.operation.schema import build_schema
from core.config import Settings

SCHEMA = build_schema(Settings())._schema
#: Root fields of an abstract type, which plans leave to ordinary execution.
ABSTRACT_ROOTS = frozenset({"node", "nodes"})


@dataclass
class Values:
    """What the corpus holds, to draw arguments from."""

    ids: list[str] = field(default_factory=lambda: ["0" * 24, "nope"])
    urls: list[str] = field(default_factory=lambda: ["https://nowhere.example/x"])
    topics: list[str] = field(default_factory=lambda: ["Health"])
    domains: list[str] = field(default_factory=lambda: ["tramtimes.example"])
    categories: list[str] = field(default_factory=lambda: ["news"])
    types: list[str] = field(default_factory=lambda: ["article"])
    words: list[str] = field(default_factory=lambda: ["tram"])
    #: Relay ids of providers and topics (``node(id:)``), some naming nothing.
    node_ids: list[str] = field(default_factory=lambda: ["VG9waWM6SGVhbHRo", "UHJvdmlkZXI6eA"])
    cursors: list[str] = field(default_factory=lambda: ["not-a-cursor"])


def literal(value: Any) -> str:
    """``value`` in GraphQL's literal syntax (enums are passed as ``Enum``)."""
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


@dataclass(frozen=True)
class Enum:
    name: str


class Builder:
    def __init__(self, draw: Any, values: Values) -> None:
        self.draw, self.values = draw, values
        self.definitions: list[str] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[str] = []
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def operation(self) -> tuple[str, dict[str, Any]]:
        body = self.selection(SCHEMA.query_type, self.draw(st.integers(1, 4)))
        head = f"query Q({', '.join(self.definitions)})" if self.definitions else "query Q"
        return "\n".join([f"{head} {body}", *self.fragments]), self.variables

    def selection(self, type_: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> str:
        if isinstance(type_, GraphQLInterfaceType):
            return self.abstract(type_, depth)
        names = [
            n for n, f in type_.fields.items() if depth > 0 or is_leaf_type(get_named_type(f.type))
        ]
        if not names:  # a connection at the bottom: its count alone
            names = ["totalCount"] if "totalCount" in type_.fields else list(type_.fields)[:1]
        # node/nodes (abstract: left to ordinary execution) in fewer operations,
        # so that most of them test plans.
        weighted = [n for n in names for _ in range(1 if n in ABSTRACT_ROOTS else 4)]
        picked = self.draw(st.lists(st.sampled_from(weighted), min_size=1, max_size=6, unique=True))
        parts = [self.field(type_, name, depth) for name in picked]
        if self.draw(st.integers(0, 5)) == 0:
            parts.append("__typename")
        return "{ " + " ".join(self.wrap(type_, part) for part in parts) + " }"

    def abstract(self, type_: GraphQLInterfaceType, depth: int) -> str:
        """A selection on ``Node``: its own fields, and fragments on the types
        that implement it (some of which match nothing the id names)."""
        parts = [name for name in type_.fields if self.draw(st.booleans())]
        for possible in SCHEMA.get_possible_types(type_):
            if self.draw(st.booleans()):
                parts.append(f"... on {possible.name} {self.selection(possible, depth)}")
        if self.draw(st.booleans()) or not parts:
            parts.append("__typename")
        return "{ " + " ".join(parts) + " }"

    def wrap(self, type_: GraphQLObjectType, part: str) -> str:
        how = self.draw(st.sampled_from(["plain"] * 5 + ["inline", "typed", "named", "directive"]))
        if how == "inline":
            return f"... {{ {part} }}"
        if how == "typed":
            return f"... on {type_.name} {{ {part} }}"
        if how == "named":
            name = self.fresh("F")
            self.fragments.append(f"fragment {name} on {type_.name} {{ {part} }}")
            return f"...{name}"
        if how == "directive":
            return f"... {self.directive()} {{ {part} }}"
        return part

    def directive(self) -> str:
        which = self.draw(st.sampled_from(["include", "skip"]))
        if self.draw(st.booleans()):
            return f"@{which}(if: {literal(self.draw(st.booleans()))})"
        name = self.fresh("b")
        if self.draw(st.integers(0, 4)) == 0:  # a default, the variable not given
            self.definitions.append(f"${name}: Boolean = {literal(self.draw(st.booleans()))}")
        else:
            self.definitions.append(f"${name}: Boolean!")
            self.variables[name] = self.draw(st.booleans())
        return f"@{which}(if: ${name})"

    def field(self, type_: GraphQLObjectType, name: str, depth: int) -> str:
        definition = type_.fields[name]
        target = get_named_type(definition.type)
        text = name
        if definition.args:  # every field with arguments gets its own key: no conflicts
            text = f"{self.fresh('a')}: {name}{self.arguments(type_.name, definition.args)}"
        elif self.draw(st.integers(0, 4)) == 0:
            text = f"{self.fresh('k')}: {name}"
        if self.draw(st.integers(0, 6)) == 0:
            text += " " + self.directive()
        if isinstance(target, GraphQLObjectType | GraphQLInterfaceType):
            text += " " + self.selection(target, depth - 1)
        return text

    def arguments(self, parent: str, args: dict[str, Any]) -> str:
        given = []
        for name, arg in args.items():
            required = isinstance(arg.type, GraphQLNonNull)
            if not required and self.draw(st.integers(0, 2)) == 0:
                continue
            value = self.value(parent, name)
            if required and value is None:  # node(id:): a null is never valid
                value = self.values.ids[0]
            if self.draw(st.integers(0, 3)) == 0:
                given.append(f"{name}: {self.variable(arg, value)}")
            else:
                given.append(f"{name}: {literal(value)}")
        return f"({', '.join(given)})" if given else ""

    def variable(self, arg: Any, value: Any) -> str:
        name = self.fresh("v")
        declared = str(arg.type)
        roll = self.draw(st.integers(0, 9))
        if roll == 0 and declared.endswith("!") and arg.default_value is not Undefined:
            declared = declared[:-1]  # allowed where the argument has a default
            value = None  # and refused at run time: the argument must not be null
        elif roll == 1:
            value = self.draw(st.sampled_from(["x", 1.5, [1], {"a": 1}]))  # refused variable
        self.definitions.append(f"${name}: {declared}")
        if roll != 2:  # an unset variable leaves the argument to its default
            self.variables[name] = value.name if isinstance(value, Enum) else value
        return f"${name}"

    def value(self, parent: str, name: str) -> Any:
        v, draw = self.values, self.draw
        if name == "first":
            return draw(st.sampled_from([0, 1, 2, 2, 3, 3, 5, None, -1, 101]))
        if name == "after":  # mostly none: a cursor belongs to one list and order
            return draw(st.one_of(st.none(), st.none(), st.sampled_from([*v.cursors, "", "abc"])))
        if name == "orderBy":
            names = ["PUBLISHED_DESC", "PUBLISHED_ASC", "QUALITY_DESC", "HEAT_DESC"]
            return Enum(draw(st.sampled_from(names * 2 + ["RELEVANCE"])))
        if name == "filter" and parent == "Article":
            return self.related_filter()
        if name == "filter":
            return self.filter()
        if name == "search":  # providers, topics
            return draw(st.sampled_from([*v.domains, "a", "TRAM", "x" * 101, ""]))
        if name == "id":
            return draw(st.sampled_from([*v.ids, *v.node_ids, None]))
        if name == "ids":  # nodes(ids:): some repeated, some naming nothing
            return draw(st.lists(st.sampled_from([*v.ids, *v.node_ids, "!"]), max_size=4))
        if name == "webUrl":
            return draw(st.sampled_from([*v.urls, None]))
        if name == "domain":
            return draw(st.sampled_from([*v.domains, " TRAMTIMES.example ", "nowhere.example"]))
        if name == "name":
            return draw(st.sampled_from([*v.topics, "Nothing"]))
        raise AssertionError(f"no values for {parent}.{name}")

    def related_filter(self) -> dict[str, Any] | None:
        v, draw = self.values, self.draw
        choices: dict[str, Any] = {
            "providerDomain": st.sampled_from([*v.domains, " TramTimes.Example "]),
            "excludeProviderDomain": st.sampled_from(v.domains),
            "type": st.sampled_from(v.types),
            "minQuality": st.integers(-1, 90),
            "publishedAfter": st.sampled_from(["2020-01-01T00:00:00Z", "2025-06-01T00:00:00Z"]),
            "publishedBefore": st.sampled_from(["2030-01-01T00:00:00Z", "2024-01-01T00:00:00Z"]),
            "hasImages": st.booleans(),
            "stored": st.booleans(),
        }
        if draw(st.integers(0, 3)) == 0:
            return None
        keys = draw(st.lists(st.sampled_from(list(choices)), max_size=3, unique=True))
        return {k: draw(choices[k]) for k in keys}

    def filter(self) -> dict[str, Any] | None:
        v, draw = self.values, self.draw
        choices: dict[str, Any] = {
            "topic": st.sampled_from(v.topics),
            "topicsAny": st.one_of(
                st.lists(st.sampled_from(v.topics), max_size=3), st.just(["t"] * 51)
            ),
            "providerDomain": st.sampled_from([*v.domains, " TramTimes.Example "]),
            "category": st.sampled_from(v.categories),
            "type": st.sampled_from(v.types),
            "publishedAfter": st.sampled_from(["2020-01-01T00:00:00Z", "2025-06-01T00:00:00Z"]),
            "publishedBefore": st.sampled_from(["2030-01-01T00:00:00Z", "2024-01-01T00:00:00Z"]),
            "minQuality": st.integers(-1, 90),
            "minHeat": st.integers(-1, 90),
            "search": st.sampled_from([*v.words, *v.words, "!!!", "tram tram", "x " * 21]),
            "published": st.booleans(),
        }
        if draw(st.integers(0, 5)) == 0:
            return None
        keys = draw(st.lists(st.sampled_from(list(choices)), max_size=3, unique=True))
        return {k: draw(choices[k]) for k in keys}


@st.composite
def operations(draw: Any, values: Values) -> tuple[str, dict[str, Any]]:
    """One operation and its variables."""
    return Builder(draw, values).operation()


@given(operations(Values()))
@settings(max_examples=50, deadline=None, database=None, derandomize=True)
def test_generated_operations_are_mostly_valid(operation: tuple[str, dict[str, Any]]) -> None:
    """The generator makes operations GraphQL accepts (a few refused by the
    depth limit at most): the differential tests compare executions, not
    validation errors."""
    text, _ = operation
    assert not validate(SCHEMA, parse(text)), text
