import time

import pytest

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


def test_syntax_errors_give_the_file_line():
    with pytest.raises(Rejected, match="invalid YAML") as err:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", first_line=2)
    assert err.value.line == 4


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
