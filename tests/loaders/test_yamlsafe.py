import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders import yamlsafe
from loaders.errors import Rejected
from loaders.yamlsafe import MAX_DEPTH, Plain, parse_yaml


def test_unquoted_scalars_keep_their_text():
    data = parse_yaml("a: yes\nb: 2020-05-07\nc: 1e3\nd: null\ne: on\nf: 012\n")
    assert data == {"a": "yes", "b": "2020-05-07", "c": "1e3", "d": "null", "e": "on", "f": "012"}
    assert all(isinstance(v, Plain) for v in data.values())


def test_quoted_scalars_are_plain_str_not_plain_marker():
    data = parse_yaml("a: 'yes'\nb: \"2020\"\n")
    assert data == {"a": "yes", "b": "2020"}
    assert not any(isinstance(v, Plain) for v in data.values())


def test_alias_bomb_is_refused_without_expanding():
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    with pytest.raises(Rejected, match="aliases"):
        parse_yaml("\n".join(levels))
    assert time.perf_counter() - started < 1.0


def test_merge_keys_are_refused():
    with pytest.raises(Rejected, match="merge keys"):
        parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deep_nesting_is_refused_before_the_parser_recurses(depth):
    # 200,000 levels would crash the C composer if it ever saw them.
    with pytest.raises(Rejected, match=f"deeper than {MAX_DEPTH}"):
        parse_yaml("a: " + "[" * depth + "]" * depth)


def test_nesting_within_the_limit_parses():
    depth = MAX_DEPTH - 1
    data = parse_yaml("a: " + "[" * depth + "]" * depth)
    for _ in range(depth):
        data = data["a"] if isinstance(data, dict) else data[0] if data else data
    assert data == []


def test_duplicate_keys_are_refused_with_their_line():
    with pytest.raises(Rejected, match="duplicate key 'title'") as err:
        parse_yaml("title: a\nx: 1\ntitle: b\n", first_line=2)
    assert err.value.line == 4


def test_syntax_errors_give_the_file_line_where_the_problem_starts():
    # The bracket opened on file line 3; the parser gave up on line 4.
    with pytest.raises(Rejected, match="invalid YAML") as err:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", first_line=2)
    assert err.value.line == 3
    assert err.value.reason.endswith("did not find expected ',' or ']' on line 4")


@pytest.mark.parametrize("quote", ['"', "'"])
def test_an_unclosed_quote_is_reported_where_it_opened_not_where_the_parser_gave_up(quote):
    text = f"a: 1\nb: 2\ntitle: {quote}Ferry Fleet\nc: 3\nd: 4\n"
    with pytest.raises(Rejected) as err:
        parse_yaml(text, first_line=2)
    assert err.value.line == 4  # the title's line in the file; the text ends on line 7
    assert err.value.reason == (
        "invalid YAML: while scanning a quoted scalar, "
        "found unexpected end of the front matter on line 7"
    )


def test_a_quoted_value_over_several_lines_is_no_error():
    assert parse_yaml('a: "one\n  two"\nb: 1\n') == {"a": "one two", "b": "1"}


def test_a_key_without_its_colon_is_reported_on_its_own_line():
    with pytest.raises(Rejected, match="could not find expected ':'") as err:
        parse_yaml("title: x\nnot a key\nother: y\n", first_line=2)
    assert err.value.line == 3


def test_a_broken_block_is_reported_where_it_broke_not_where_it_began():
    # A block's context is the whole block from its first line; the line
    # that broke it is the one to fix.
    with pytest.raises(Rejected, match="block mapping") as err:
        parse_yaml("a:\n  - 1\n - 2\n", first_line=2)
    assert err.value.line == 4
    assert not err.value.reason.endswith("on line 4")


def test_tab_indentation_is_explained():
    with pytest.raises(Rejected, match="tab") as err:
        parse_yaml("a:\n\tb: 1\n", first_line=2)
    assert err.value.line == 3


def test_python_tags_are_refused():
    with pytest.raises(Rejected, match="python/object"):
        parse_yaml("a: !!python/object/apply:os.system ['true']\n")


def test_c1_control_characters_survive_parsing_for_repair():
    data = parse_yaml('a: "x â€\x9d y"\nb: â€\x9cplain\n')
    assert data == {"a": "x â€\x9d y", "b": "â€\x9cplain"}


def test_other_control_characters_are_refused_with_their_line():
    with pytest.raises(Rejected, match=r"invalid character '\\x07' \(U\+0007\)") as err:
        parse_yaml("a: 1\nb: bell\x07\n", first_line=2)
    assert err.value.line == 3
    # the same through the depth scan, which long texts take first
    deep = "k: [" + ", ".join(["[1]"] * 40) + "]\n"
    with pytest.raises(Rejected, match="invalid character"):
        parse_yaml(deep + "b: \x07\n")


# -- the direct walk builds what the general constructor builds ------------------

_SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["no", "2020-05-07", "0x1F", "~", "<<", "â€\x9d", "a\x85b", "1_000"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
#: Lines the walk leaves to the general way: tags, aliases, duplicates, odd keys.
_ODD = st.sampled_from(
    [
        "x: !!int '3'\n",
        "x: !!binary aGk=\n",
        "x: !custom 1\n",
        "x: &a [1]\ny: *a\n",
        "x: 1\nx: 2\n",
        "x: 1\n'x': 2\n",
        "? [1, 2]\n: 3\n",
        "? {a: 1}\n: 3\n",
        "<<: {a: 1}\n",
        "x: !!set {a, b}\n",
        "x: !!timestamp 2020-01-01\n",
        "x: !!str 12\n",
    ]
)


def _general(text: str) -> object:
    """What PyYAML's constructor (the general way) builds, or the error it raises."""
    protected = yamlsafe._C1.search(text) is not None
    loader = yamlsafe._Loader(text.translate(yamlsafe._PROTECT) if protected else text)
    loader.protected = protected
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _typed(value: object) -> object:
    """``value`` with each scalar's type beside it (a Plain is not a str)."""
    if isinstance(value, dict):
        return {_typed(k): _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


@settings(max_examples=300, deadline=None)
@given(
    value=st.dictionaries(st.text(max_size=8), _VALUES, max_size=6),
    style=st.sampled_from([None, False, True]),
    odd=st.lists(_ODD, max_size=2),
)
def test_the_direct_walk_builds_what_the_general_constructor_builds(value, style, odd):
    text = yaml.safe_dump(value, default_flow_style=style, allow_unicode=True) + "".join(odd)
    try:
        expected = _typed(_general(text))
    except yaml.YAMLError as exc:  # refused the same way, at the same line
        with pytest.raises(Rejected) as refused:
            parse_yaml(text)
        said = yamlsafe._rejected(exc, 1, text.translate(yamlsafe._PROTECT))
        assert (refused.value.reason, refused.value.line) == (said.reason, said.line)
        return
    assert _typed(parse_yaml(text)) == expected
