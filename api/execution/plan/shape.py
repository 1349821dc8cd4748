"""The response builder: a plan's fields made into functions that write the
answer straight from the documents.

Each field gets one function, ``resolve(parent, state, path)``, that reads its
value and completes it as GraphQL's "Value Completion" says: leaves coerced by
their type, lists item by item, objects field by field, and a null where the
type forbids one raised as a field error that propagates to the nearest
nullable position, which becomes null and reports it (spec section 6.4.4,
"Handling Field Errors"). Paths are built only for objects and lists, and an
error's path only when it happens.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLString,
    is_leaf_type,
)
from graphql.execution import Executor

from api.bounded import ENTRY_BYTES, BoundedLRU
from api.execution.plan.fields import TOPICS, document_read, getter, topic_objects
from api.execution.plan.nodes import Failure, Fallback, PlanField, Resolve, Selection
from api.execution.plan.state import State
from api.schema.caching import ID_FIELDS
from api.schema.facts import Kind
from api.schema.scalars import serialize as serialize_datetime

#: A response path as nested ``(parent, key)`` pairs (``None`` at the root):
#: one small tuple per object, flattened only for an error.
Path = Any
#: Completes a value found under ``key`` of the position ``path``.
Complete = Callable[[Any, State, Path, str | int], Any]
#: GraphQL's 32-bit Int: a larger int is refused by the type, not passed on.
INT32 = range(-(2**31), 2**31)


def prepare(selection: Selection) -> None:
    """Give every field below ``selection`` its getter and resolve function."""
    for f in selection.fields:
        if f.selection is not None:
            prepare(f.selection)
        f.get = getter(f)
        f.resolve = _resolve(f)


def _resolve(f: PlanField) -> Resolve:
    get, key, nodes = f.get, f.key, f.nodes
    type_ = f.definition.type
    if isinstance(type_, GraphQLNonNull):
        complete = f.complete = _complete(type_.of_type, f)
        message = _null_message(f)

        def required(source: Any, state: State, path: Path) -> Any:
            try:
                value = complete(get(source, state), state, path, key)
            except (Failure, Fallback):
                raise
            except Exception as raw:  # what the resolver or the type raised
                raise Failure(raw, nodes, (path, key)) from None
            if value is None:
                raise Failure(TypeError(message), nodes, (path, key))
            return value

        return required
    complete = f.complete = _complete(type_, f)

    def optional(source: Any, state: State, path: Path) -> Any:
        try:
            return complete(get(source, state), state, path, key)
        except Fallback:
            raise
        except Failure as failure:
            state.fail(failure)
        except Exception as raw:
            state.fail(Failure(raw, nodes, (path, key)))
        return None

    return optional


def _null_message(f: PlanField) -> str:
    """graphql-core's words for a null where the field's type forbids one."""
    return f"Cannot return null for non-nullable field {f.parent}.{f.name}."


def _complete(type_: GraphQLOutputType, f: PlanField) -> Complete:
    """Completes a value of the nullable ``type_`` (null passes through)."""
    if isinstance(type_, GraphQLList):
        return _complete_list(type_.of_type, f)
    if is_leaf_type(type_):
        assert isinstance(type_, GraphQLLeafType)
        return _complete_leaf(type_)
    selection = f.selection
    assert selection is not None, f.key
    return _object_completer(selection)


def _object_completer(selection: Selection) -> Complete:
    """Completes an object of ``selection``'s type: a function written for
    this selection (see :func:`_object_source`), so each field costs its own
    few operations, with no loop over a table of fields and no dict written
    key by key. Its code is compiled once per text (:func:`_maker`): the
    selections of one shape, in any plan, share it, each with its own values."""
    values: dict[str, Any] = {}
    source = _object_source(selection, values)
    make = _maker(source, sorted(values), selection.type_name)
    complete_object: Complete = make(**values)
    return complete_object


def _items_completer(selection: Selection, each: Complete) -> Complete:
    """Completes a list of non-null objects of ``selection``'s type as
    ``each`` (:func:`_complete_list`'s own function) does, written out for
    this selection as :func:`_object_completer` is (:func:`_items_source`):
    one call for the whole list, not one per item and one for the list."""
    values: dict[str, Any] = {"EACH": each}
    source = _items_source(selection, values)
    make = _maker(source, sorted(values), f"[{selection.type_name}!]", "complete_items")
    complete_items: Complete = make(**values)
    return complete_items


#: The functions that make completers, by their text: shared by every
#: selection of the same shape (the 28 pages of one plan, or one query's
#: plans). Bounded by count and by estimated bytes, as all a client can
#: fill: an entry holds its text (the key) and the code compiled from it,
#: which takes about four times the text (measured 3.7–4.0×).
MAKERS_KEPT = 512
MAKERS_BYTES = 4_000_000
_makers: BoundedLRU[str, tuple[Callable[..., Complete], int]] = BoundedLRU(
    MAKERS_KEPT, MAKERS_BYTES, lambda made: made[1], MAKERS_BYTES // 16
)


def _maker(
    source: str, params: list[str], type_name: str, name: str = "complete_object"
) -> Callable[..., Complete]:
    """The function taking ``params`` (by name) that returns the completer
    ``name`` whose definition is ``source`` (written at the left margin)."""
    body = "".join(f"    {line}\n" if line else "\n" for line in source.splitlines())
    text = f"def make({', '.join(params)}):\n{body}    return {name}\n"
    found = _makers.get(text)
    if found is None:
        # Besides its own values, it reads these (and builtins).
        names: dict[str, Any] = {"SLOW": SLOW, "Failure": Failure, "Fallback": Fallback}
        exec(compile(text, f"<completer of {type_name}>", "exec"), names)
        found = (names["make"], 5 * sys.getsizeof(text) + ENTRY_BYTES)
        _makers[text] = found
    return found[0]


def _object_source(selection: Selection, names: dict[str, Any]) -> str:
    """The source of ``complete_object`` for ``selection``, its objects and
    functions put in ``names`` (the text holds only the response keys and
    document keys, as literals). What it does, for a value that is not None:
    counts the object, and for a stored document (a dict) names it for
    shared caches if its type has cache keys (``api.schema.caching``); then
    reads each field in order: a leaf read from a document key of the exact
    type its coercion passes on (or converts) is taken as it is, a null is
    taken where allowed, and anything else goes to the field's own resolve
    function, or rather its body, written out here: the field's value read
    and completed, a field error absorbed (nullable) or raised (not), as
    :func:`_resolve`'s functions do. The answer is made at once, keys in the
    selection's order."""
    leaves, here = _paths(selection)
    lines = [
        "def complete_object(value, state, path, key):",
        "    if value is None:",
        "        return None",
        *([] if leaves else ["    here = (path, key)"]),
        "    state.objects += 1",
    ]
    keys = [repr(x.key) for x in selection.fields]
    every = ", ".join(f"{k}: r{i}(value, state, {here})" for i, k in enumerate(keys))
    lines.append("    if type(value) is not dict:")
    lines.append(f"        return {{{every}}}")
    body, made = _document_lines(selection, names)
    lines += body
    lines.append(f"    return {made}")
    return "\n".join(lines) + "\n"


def _items_source(selection: Selection, names: dict[str, Any]) -> str:
    """The source of ``complete_items`` for a list of non-null objects of
    ``selection``'s type (see :func:`_items_completer`): each item that is a
    stored document completed by :func:`_object_source`'s lines, written out
    in a loop, and the list made at once. On anything else (an item that is
    not a document, an exception that is no field error) it forgets what it
    did and hands the whole list to ``EACH``, which completes it as before,
    errors and counts included; a field error raised propagates at once, as
    there."""
    leaves, _ = _paths(selection)
    lines = [
        "def complete_items(items, state, outer, name):",
        "    if items.__class__ is not list or not items:",
        "        return EACH(items, state, outer, name)",
        "    path = (outer, name)",
        "    errors, failures, objects = len(state.errors), state.failures, state.objects",
        # Read once for the list (each item's own lines do not read it).
        *(["    named = state.cache_keys"] if ID_FIELDS.get(selection.type_name) else []),
        "    out = []",
        "    append = out.append",
        "    try:",
        "        for key, value in enumerate(items):",
        "            if value.__class__ is not dict:",
        "                break",
        *([] if leaves else ["            here = (path, key)"]),
        "            state.objects += 1",
    ]
    body, made = _document_lines(selection, names, in_items=True)
    lines += [f"        {line}" for line in body]
    lines += [
        f"            append({made})",
        "        else:",
        "            return out",
        "    except (Failure, Fallback):",
        "        raise",
        "    except Exception:",
        "        pass",
        "    del state.errors[errors:]",
        "    state.failures, state.objects = failures, objects",
        "    return EACH(items, state, outer, name)",
    ]
    return "\n".join(lines) + "\n"


def _paths(selection: Selection) -> tuple[bool, str]:
    """Whether every field of ``selection`` is a leaf taken as it is, and so
    how an object's path is written: made at once where a field below is
    completed through a call (``here``); else only when a field's own
    function is called (rarely: a value of another type)."""
    leaves = all(_fast(x)[0] is not None for x in selection.fields)
    return leaves, "(path, key)" if leaves else "here"


def _document_lines(
    selection: Selection, names: dict[str, Any], in_items: bool = False
) -> tuple[list[str], str]:
    """The lines that complete a stored document ``value`` (a dict) of
    ``selection``'s type at ``(path, key)`` (``here``, where made), already
    counted, and the expression of the answer they make; at the margin of a
    function's body. ``in_items``: in :func:`_items_source`'s loop, which
    has read ``state.cache_keys`` into ``named`` once for the whole list.
    Its keys are read by ``value.get`` calls, not through a bound method
    made for each document (measured: 8 % of the front page's shaping)."""
    type_name = selection.type_name
    id_field = ID_FIELDS.get(type_name)
    _, here = _paths(selection)
    lines: list[str] = []
    keys = [repr(x.key) for x in selection.fields]
    for i, x in enumerate(selection.fields):
        names[f"r{i}"] = x.resolve
    calls = [f"r{i}(value, state, {here})" for i in range(len(keys))]
    if id_field is not None:
        names["TYPE_NAME"] = type_name
        if not in_items:  # else read once before the items' loop
            lines.append("    named = state.cache_keys")
        lines += [
            "    if named is not None:",
            f"        ident = value.get({id_field!r})",
            "        if type(ident) is str and ident:",
            "            named.add((TYPE_NAME, ident))",
        ]
    for i, x in enumerate(selection.fields):
        exact, convert, nullable = _fast(x)
        v, call = f"v{i}", calls[i]
        if exact is None and _text_id(x):
            # A stored document's text id is the ID it passes on (read as its
            # getter reads it); anything else takes the field's own way.
            lines.append(f"    {v} = value.get('_id')")
            lines.append(f"    if {v}.__class__ is not str:")
            lines += [f"    {line}" for line in _inline_resolve(x, i, names)]
            continue
        if exact is None:
            lines += _inline_resolve(x, i, names)
            continue
        names[f"E{i}"] = exact
        lines.append(f"    {v} = value.get({x.source!r})")
        if convert is None:
            lines.append(f"    if {v}.__class__ is not E{i}:")
            if nullable:
                lines.append(f"        if {v} is not None:")
                lines.append(f"            {v} = {call}")
            else:
                lines.append(f"        {v} = {call}")
            continue
        lines.append(f"    if {v}.__class__ is E{i}:")
        if convert is _int32:
            # The 32-bit range tested here, not in a call: an Int out of
            # range takes the type's own coercion (which refuses it).
            lines.append(f"        if not {INT32.start} <= {v} < {INT32.stop}:")
        else:
            names[f"C{i}"] = convert
            lines += [f"        {v} = C{i}({v})", f"        if {v} is SLOW:"]
        lines.append(f"            {v} = {call}")
        if nullable:
            lines.append(f"    elif {v} is not None:")
        else:
            lines.append("    else:")
        lines.append(f"        {v} = {call}")
    pairs = ", ".join(f"{k}: v{i}" for i, k in enumerate(keys))
    return lines, f"{{{pairs}}}"


def _inline_resolve(f: PlanField, i: int, names: dict[str, Any]) -> list[str]:
    """The lines of :func:`_object_source` that resolve ``f``, the ``i``-th
    field, on a stored document ``value``: :func:`_resolve`'s function for
    it, written out (a plain key read straight from the document)."""
    key = repr(f.key)
    names[f"K{i}"], names[f"N{i}"] = f.complete, f.nodes
    raw = document_read(f)
    names_only = _topic_names(f)
    if names_only is not None:
        names[f"K{i}"], raw = names_only, f"value.get({TOPICS!r})"
    if raw is None:
        names[f"G{i}"] = f.get
        raw = f"G{i}(value, state)"
    v = f"v{i}"
    lines = ["    try:", f"        {v} = K{i}({raw}, state, here, {key})"]
    if isinstance(f.definition.type, GraphQLNonNull):
        names[f"M{i}"] = _null_message(f)
        return [
            *lines,
            "    except (Failure, Fallback):",
            "        raise",
            "    except Exception as raw:",
            f"        raise Failure(raw, N{i}, (here, {key})) from None",
            f"    if {v} is None:",
            f"        raise Failure(TypeError(M{i}), N{i}, (here, {key}))",
        ]
    return [
        *lines,
        "    except Fallback:",
        "        raise",
        "    except Failure as failure:",
        "        state.fail(failure)",
        f"        {v} = None",
        "    except Exception as raw:",
        f"        state.fail(Failure(raw, N{i}, (here, {key})))",
        f"        {v} = None",
    ]


def _topic_names(f: PlanField) -> Complete | None:
    """For ``Article.topics`` selecting only each topic's ``name`` (as the
    front page does): a completer taking the names the article stores, which
    makes each answer's object once, where the getter's ``{'name': n}`` is
    made and then completed into an equal object. The same answer, count and
    cache keys as ``f.complete`` gives the getter's objects: a list of texts
    can hold no field error, and anything else (a null or a number among
    them, not a list) is made into the getter's objects and completed so."""
    selection = f.selection
    if f.kind is not Kind.TOPICS or selection is None or len(selection.fields) != 1:
        return None
    (name_field,) = selection.fields
    if name_field.kind is not Kind.READ or name_field.source != "name":
        return None
    if _fast(name_field)[:2] != (str, None):  # a String (or ID): a text as it is
        return None
    complete, key = f.complete, name_field.key
    assert complete is not None  # made before its parent's code (prepare)
    # Named for shared caches by the name, as each object's own code does.
    keyed = ID_FIELDS.get(selection.type_name) == "name"
    type_name = selection.type_name

    def complete_names(stored: Any, state: State, path: Path, at: str | int) -> Any:
        if stored.__class__ is list:
            named = state.cache_keys if keyed else None
            out: list[dict[str, str]] = []
            for name in stored:
                if name.__class__ is not str:
                    break  # (the names before it are named again there: a set)
                if named is not None and name:
                    named.add((type_name, name))
                out.append({key: name})
            else:
                state.objects += len(out)
                return out
        return complete(topic_objects(stored), state, path, at)

    return complete_names


#: What a fast conversion returns for a value it leaves to the type's own.
SLOW = object()
#: Date-times whose text is kept: the same articles' dates go out request
#: after request. Each entry is a date-time, its 24-character text and the
#: cache's node (under 300 bytes): under 1.2 MB in all.
DATE_TIMES_KEPT = 4096
#: ``serialize_datetime``, computed once per date-time (equal date-times
#: are the same instant, and so the same text in UTC).
_date_time_text = lru_cache(maxsize=DATE_TIMES_KEPT)(serialize_datetime)


def _int32(value: int) -> Any:
    """An int as GraphQL's Int passes it on: itself within 32 bits."""
    return value if value in INT32 else SLOW


#: Leaf types whose coercion of an exact Python type is known: that type, and
#: the conversion (``None`` for the value itself).
FAST: dict[str, tuple[type, Callable[[Any], Any] | None]] = {
    "String": (str, None),
    "ID": (str, None),
    "Boolean": (bool, None),
    "Int": (int, _int32),
    "DateTime": (datetime, _date_time_text),
}


def _fast(f: PlanField) -> tuple[type | None, Callable[[Any], Any] | None, bool]:
    """For a field that reads a document key into a leaf: the exact type its
    value is passed on for, the conversion, and whether null is allowed."""
    type_ = f.definition.type
    nullable = not isinstance(type_, GraphQLNonNull)
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if f.kind is not Kind.READ or not is_leaf_type(named) or named.name not in FAST:
        return None, None, nullable
    exact, convert = FAST[named.name]
    return exact, convert, nullable


def _text_id(f: PlanField) -> bool:
    """Whether ``f`` is an object's ``id`` read from its document's ``_id``
    as an ``ID`` (or ``String``), which passes a text on as it is."""
    type_ = f.definition.type
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    return f.kind is Kind.ID and named in (GraphQLID, GraphQLString)


def _complete_list(item_type: GraphQLOutputType, f: PlanField) -> Complete:
    required = isinstance(item_type, GraphQLNonNull)
    inner = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
    complete = _complete(inner, f)
    message, nodes = _null_message(f), f.nodes

    def item(value: Any, state: State, path: Path, index: int) -> Any:
        try:
            completed = complete(value, state, path, index)
        except (Failure, Fallback):
            raise
        except Exception as raw:
            raise Failure(raw, nodes, (path, index)) from None
        if completed is None and required:
            raise Failure(TypeError(message), nodes, (path, index))
        return completed

    def nullable_item(value: Any, state: State, path: Path, index: int) -> Any:
        try:
            return item(value, state, path, index)
        except Failure as failure:
            state.fail(failure)
        return None

    each = item if required else nullable_item

    def complete_list(value: Any, state: State, path: Path, key: str | int) -> Any:
        if value is None:
            return None
        if type(value) is not list:  # execution accepts any iterable but a string
            raise Fallback(f"{f.parent}.{f.name} is a {type(value).__name__}")
        if not value:
            return []
        here = (path, key)
        if required:  # all items at once; on any trouble, again one by one
            errors, failures = len(state.errors), state.failures
            try:
                out = [complete(v, state, here, i) for i, v in enumerate(value)]
            except (Failure, Fallback):
                raise  # what the one-by-one walk raises too, at the same item
            except Exception:  # a raw error: the walk below says at which item
                out = [None]
            if None not in out:
                return out
            del state.errors[errors:]  # the walk below reports them again
            state.failures = failures
        return [each(v, state, here, i) for i, v in enumerate(value)]

    if required and f.selection is not None and not isinstance(inner, GraphQLList):
        # Non-null objects: written out for the selection, which is itself.
        return _items_completer(f.selection, complete_list)
    return complete_list


def _complete_leaf(type_: GraphQLLeafType) -> Complete:
    """The type's own coercion, with the common cases answered without a call:
    each fast path returns what the type's coercion returns for that value."""
    coerce = Executor.complete_leaf_value

    def slow(value: Any) -> Any:
        return None if value is None else coerce(type_, value)

    if type_ in (GraphQLString, GraphQLID):
        return lambda value, state, path, key: value if type(value) is str else slow(value)
    if type_ is GraphQLBoolean:
        return lambda value, state, path, key: value if type(value) is bool else slow(value)
    if type_ is GraphQLInt:
        return lambda value, state, path, key: (
            value if type(value) is int and value in INT32 else slow(value)
        )
    if type_.name == "DateTime":
        return lambda value, state, path, key: (
            _date_time_text(value) if type(value) is datetime else slow(value)
        )
    return lambda value, state, path, key: slow(value)
