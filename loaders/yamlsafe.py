"""Parse front matter with libyaml, safely and without YAML 1.1's type guessing.

PyYAML's safe loader follows YAML 1.1, which turns an unquoted ``title: no``
into ``False``, ``2020`` into a number and ``2020-05-07`` into a date. Here every
unquoted scalar is kept as the text written, marked :class:`Plain`; the
normalizer then gives each known field its declared type from that text, and
gives unknown fields YAML 1.2's core types (see ``loaders.normalize``).

Hostile input is bounded before it can cost anything:
- aliases (``*name``) and merge keys are refused, so an alias bomb never expands;
- nesting is bounded: the C composer recurses per level and would crash the
  process on a deep enough document, so deep input is measured first;
- duplicate keys are refused rather than silently keeping the last.

YAML forbids C1 control characters (U+0080-U+009F), yet they are what
double-encoded text is made of (``â€\x9d`` is a mangled ``”``), and the
normalizer can repair such text. So they travel through the parser as
private-use stand-ins and are put back in every string it returns.

libyaml composes the node tree in C; PyYAML then builds the values in Python,
through a general machinery (generators for recursive structures, a registry
of constructors per tag) that cost more than the composing (measured: 180 of
500 us per article). A front matter of plain mappings, lists and text, which
is every article's, is built by :func:`_simple` in one direct walk; anything
else (an explicit tag, an alias, a duplicate key, a key that is not text) goes
the general way, which refuses or builds it as before.

A syntax error names the file line where the problem starts, which is not
always where libyaml gave up: an unclosed quote or bracket is read on to the
end of the front matter (or to the next quote), so the line where it opened
is reported, and the line where the parser gave up is quoted in the reason.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml
from yaml._yaml import CParser  # libyaml's parser; yaml.cyaml re-exports it untyped
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from loaders.errors import Rejected

MAX_DEPTH = 64
_PLAIN_TAG = "tag:newsgraph,2024:plain"
# Every level of nesting needs one of these characters, so a text with fewer
# of them than this cannot nest deeper. libyaml's composer recurses once per
# level and crashed the process at 100,000 levels (10,000 were fine): only a
# text that could nest that deep pays for the event scan. Shallower nesting
# past MAX_DEPTH is refused later, by the normalizer.
_NESTING_CHARS = "[{-:?"
_SCAN_ABOVE = 5_000
# C1 controls but NEL (U+0085), which YAML reads as a line break.
_C1 = re.compile("[\x80-\x84\x86-\x9f]")
_STANDIN = 0xF0000  # Supplementary Private Use Area-A
_PROTECT = {c: _STANDIN + c for c in [*range(0x80, 0x85), *range(0x86, 0xA0)]}
_RESTORE = {v: k for k, v in _PROTECT.items()}


class Plain(str):
    """An unquoted scalar's text, before its field decides what type it is."""

    __slots__ = ()


class _PlainResolver(BaseResolver):
    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN_TAG
        # PyYAML's stubs leave BaseResolver.resolve unannotated; it returns a tag.
        tag: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag


class _Constructor(SafeConstructor):
    #: Whether the text had C1 characters replaced by stand-ins.
    protected = False

    def construct_yaml_str(self, node: ScalarNode) -> str:
        value = super().construct_yaml_str(node)
        return value.translate(_RESTORE) if self.protected else value

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise ConstructorError(
                None,
                None,
                "YAML aliases (*name) and merge keys (<<) are not allowed in front matter; "
                "write the value out in full",
                node.start_mark,
            )
        return super().construct_object(node, deep)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                if key_node.value in seen:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key_node.value!r}: each field may appear once",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)

    def flatten_mapping(self, node: MappingNode) -> None:
        # SafeConstructor expands `<<` merge keys here; leave them in place so
        # construct_object sees the repeated node and refuses it as an alias.
        pass

    def construct_plain(self, node: ScalarNode) -> Plain:
        return Plain(node.value.translate(_RESTORE) if self.protected else node.value)

    # What add_constructor would do, written out: a copy of SafeConstructor's
    # table with two entries replaced (its classmethod is typed for yaml's own
    # loader classes only).
    yaml_constructors: ClassVar[dict[str | None, Any]] = {
        **SafeConstructor.yaml_constructors,
        "tag:yaml.org,2002:str": construct_yaml_str,
        _PLAIN_TAG: construct_plain,
    }


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class _General(Exception):
    """The node is not of the simple kind :func:`_simple` builds."""


def _simple(node: Node, seen: set[int], restore: bool) -> Any:
    """The value of a tree of untagged mappings with text keys, lists and
    text, each node met once; :class:`_General` for any other."""
    if id(node) in seen:  # an alias: the general way refuses it, and says where
        raise _General
    seen.add(id(node))
    kind, tag = node.__class__, node.tag
    if kind is ScalarNode:
        text: str = node.value
        if restore:
            text = text.translate(_RESTORE)
        if tag == _PLAIN_TAG:
            return Plain(text)
        if tag == _STR_TAG:
            return text
    elif kind is MappingNode and tag == _MAP_TAG:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode or key_node.value in mapping:
                raise _General  # a duplicate, or a key that needs building
            key = _simple(key_node, seen, restore)
            if key in mapping:
                raise _General
            mapping[key] = _simple(value_node, seen, restore)
        return mapping
    elif kind is SequenceNode and tag == _SEQ_TAG:
        return [_simple(item, seen, restore) for item in node.value]
    raise _General


class _Loader(CParser, _Constructor, _PlainResolver):
    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        _Constructor.__init__(self)
        _PlainResolver.__init__(self)


def parse_yaml(text: str, first_line: int = 1) -> Any:
    """Parse one YAML document. ``first_line`` is the file line the text starts
    on, so that errors name the line in the file, not in the front matter."""
    protected = _C1.search(text) is not None
    if protected:
        text = text.translate(_PROTECT)
    if sum(text.count(c) for c in _NESTING_CHARS) > _SCAN_ABOVE:
        _check_depth(text, first_line)
    loader = _Loader(text)
    loader.protected = protected
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            return _simple(node, set(), protected)
        except (_General, RecursionError):
            return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _rejected(exc, first_line, text) from None
    except RecursionError:
        raise Rejected(f"front matter nests deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def _check_depth(text: str, first_line: int) -> None:
    """Walk the event stream (libyaml's parser keeps its own stack and does not
    recurse) and refuse the text once nesting passes :data:`MAX_DEPTH`."""
    parser = CParser(text)
    depth = 0
    try:
        while (event := parser.get_event()) is not None:
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise Rejected(
                        f"front matter nests deeper than {MAX_DEPTH} levels",
                        line=event.start_mark.line + first_line if event.start_mark else None,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _rejected(exc, first_line, text) from None
    finally:
        parser.dispose()


def _rejected(exc: yaml.YAMLError, first_line: int, text: str) -> Rejected:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text.count("\n", 0, max(exc.position, 0)) + first_line
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Rejected(
            f"invalid character {chr(code)!r} (U+{code:04X}): "
            "YAML allows no control characters but tab and line breaks",
            line=line,
        )
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Rejected(f"invalid YAML: {exc}")
    mark, gave_up = _where(exc)
    hint = ""
    if mark is not None and gave_up is None:
        opened = _open_quote(text, mark)
        if opened is not None:  # the quote that swallowed the lines up to the problem
            mark, gave_up = opened, mark
            hint = " (a quoted value opens on this line and runs on: is its closing quote missing?)"
    problem = (exc.problem or "").replace("end of stream", "end of the front matter")
    if gave_up is not None and mark is not None and gave_up.line != mark.line:
        problem += f" on line {gave_up.line + first_line}"
    parts = [p for p in (exc.context, problem) if p]
    reason = "invalid YAML: " + ", ".join(parts) if parts else f"invalid YAML: {exc}"
    if exc.note:
        reason += f" ({exc.note.strip()})"
    reason += hint
    if mark is not None and "\t" in (text.split("\n")[mark.line : mark.line + 1] or [""])[0]:
        reason += " (YAML indents with spaces; this line has a tab)"
    return Rejected(reason, line=mark.line + first_line if mark else None)


def _where(exc: yaml.MarkedYAMLError) -> tuple[Mark | None, Mark | None]:
    """Where the problem starts, and where the parser gave up (None: there too).

    libyaml gives up where it notices: an unclosed quote or bracket at the end
    of the front matter, maybe many lines on. Its ``context_mark`` is where the
    construct it was reading opened: the quote, the bracket, the key without
    its colon; that is the line to fix. Inside a block mapping or sequence,
    though, the context is the whole block (its first line) and the line that
    broke it is where the parser gave up."""
    context, problem = exc.context_mark, exc.problem_mark
    if context is None or (exc.context or "").startswith("while parsing a block"):
        return problem or context, None
    return context, problem


def _open_quote(text: str, problem: Mark) -> Mark | None:
    """Where a quoted scalar that spans lines and ends just before ``problem``
    opened, if one does: an unclosed quote that the next quote in the text
    closed, so that the parser only stumbled on what followed."""
    scanner = CParser(text)
    last = None
    try:
        while (token := scanner.get_token()) is not None:
            if token.start_mark.index >= problem.index:
                break
            last = token
    except yaml.YAMLError:
        pass  # the tokens up to the problem are what matter
    finally:
        scanner.dispose()
    if (
        isinstance(last, yaml.ScalarToken)
        and last.style in ('"', "'")
        and last.start_mark.line < last.end_mark.line
    ):
        mark: Mark = last.start_mark
        return mark
    return None
