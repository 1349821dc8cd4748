"""A path's text: one printable line of valid UTF-8 that names exactly one path."""

import os

from hypothesis import given
from hypothesis import strategies as st

from loaders.paths import path_of, path_text, printable

#: file names as the kernel has them: any bytes but "/" and NUL
names = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"").replace(b"\0", b""))


@given(st.lists(names, min_size=1, max_size=4))
def test_any_path_round_trips_through_valid_one_line_text(parts):
    path = os.fsdecode(b"/".join(parts))
    text = path_text(path)
    text.encode("utf-8")  # no lone surrogates: SQLite, BSON and JSON take it
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)  # no controls
    assert "\n" not in text and "\r" not in text and "\u2028" not in text
    assert path_of(text) == path
    assert os.fsencode(path_of(text)) == b"/".join(parts)


def test_escapes_are_readable_and_unambiguous():
    assert path_text("news/a.md") == "news/a.md"  # ordinary paths are their own text
    assert path_text(os.fsdecode(b"bad\xffname.md")) == "bad\\xffname.md"
    assert path_text("two\nlines.md") == "two\\nlines.md"
    assert path_text("esc\x1b[31m.md") == "esc\\x1b[31m.md"
    assert path_text("next\x85line.md") == "next\\u0085line.md"  # not byte 0x85
    assert path_text("rtl\u202egnp.md") == "rtl\\u202egnp.md"
    # a name that reads like an escape is told apart by its doubled backslash
    assert path_text("bad\\xffname.md") == "bad\\\\xffname.md"
    assert path_of("bad\\\\xffname.md") == "bad\\xffname.md"
    assert path_text("é/日本.md") == "é/日本.md"


def test_text_stored_before_escaping_still_names_its_file():
    assert path_of("C:\\docs\\a.md") == "C:\\docs\\a.md"


def test_printable_escapes_line_breaks_but_not_backslashes():
    assert printable("got 'a\nb' in C:\\x") == "got 'a\\nb' in C:\\x"
