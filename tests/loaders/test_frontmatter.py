import pytest

from loaders.errors import Rejected
from loaders.frontmatter import decode, split


def test_decode_strips_bom_and_normalizes_line_endings():
    assert decode("\ufeff---\r\na: 1\r\n---\r\n".encode()) == "---\na: 1\n---\n"
    assert decode(b"---\ra: 1\r---\r") == "---\na: 1\n---\n"


@pytest.mark.parametrize(
    ("data", "reason", "line"),
    [
        (b"", "empty", None),
        (b"  \n\n", "empty", None),
        (b"---\na: \x00\n---\n", "NUL bytes", None),
        (b"---\ntitle: caf\xe9\n---\n", "not valid UTF-8 (byte 0xe9 at offset 14)", 2),
        (b"---\na: 1\nb: \xff\xfe\n---\n", "not valid UTF-8", 3),
    ],
)
def test_decode_rejects_what_is_not_utf8_text(data, reason, line):
    with pytest.raises(Rejected) as err:
        decode(data)
    assert reason in err.value.reason
    assert err.value.line == line


def test_split_separates_front_matter_and_body():
    parts = split("---\ntitle: x\n---\n\n# Heading\n\nText.\n")
    assert parts.front_matter == "title: x\n"
    assert parts.body == "# Heading\n\nText."
    assert parts.first_line == 2


def test_split_accepts_yaml_document_end_marker_and_trailing_spaces():
    assert split("--- \ntitle: x\n...\nbody").body == "body"
    assert split("---\ntitle: x\n---   \n").front_matter == "title: x\n"


def test_split_does_not_close_on_dashes_inside_a_value():
    parts = split("---\nexcerpt: a --- b\nx: '---x'\n---\n")
    assert parts.front_matter == "excerpt: a --- b\nx: '---x'\n"


def test_split_rejects_missing_front_matter():
    with pytest.raises(Rejected, match="no front matter") as err:
        split("title: x\n")
    assert err.value.line == 1


def test_split_rejects_unterminated_front_matter():
    with pytest.raises(Rejected, match="never closed"):
        split("---\ntitle: x\nwebUrl: y\n")
