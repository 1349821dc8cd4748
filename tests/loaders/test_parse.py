"""bytes -> document: the shape of :mod:`core.document`, enforced."""

import pickle
from datetime import datetime

import pytest

from core.document import article_id
from loaders.errors import Rejected
from loaders.parse import parse_article
from tests.articles import article_text


def parse(**fields):
    body = fields.pop("body", "")
    return parse_article(article_text(body, **fields).encode(), path="a.md", content_hash="h")


def rejected(**fields) -> Rejected:
    with pytest.raises(Rejected) as err:
        parse(**fields)
    return err.value


def test_a_valid_article_keeps_its_fields_and_nesting():
    doc = parse()
    assert doc["title"] == "Tram Line Extension Opens Early"
    assert doc["quality"] == 61 and doc["heat"] == 45 and doc["published"] is True
    assert doc["provider"] == {"name": "Tram Times", "domain": "tramtimes.example"}
    assert doc["topics"] == ["Urban Transit", "Health"]
    assert doc["images"][0] == {
        "url": "https://img.tramtimes.example/stop.jpg",
        "width": 800,
        "height": 450,
        "isCached": True,
    }
    related = doc["related"][0]
    assert related["provider"]["domain"] == "healthdesk.example"
    assert related["publishedDateTime"] == datetime(2025, 6, 2, 10, 0)
    assert doc["secured"] == "c2VjcmV0LXRva2Vu;AAAA=="


def test_derived_fields():
    doc = parse()
    assert doc["_id"] == article_id("https://www.tramtimes.example/news/line-extension")
    assert doc["_source"] == {"path": "a.md", "hash": "h", "repaired": []}
    assert doc["_titleWords"] == ["tram", "line", "extension", "opens", "early"]
    assert {"hospital", "university"} <= set(doc["_words"])


@pytest.mark.parametrize(
    "title",
    ["yes", "no", "on", "off", "2020", "1e3", "null", "2020-05-07", "~", "true", "0x1F", ".inf"],
)
def test_yaml_11_traps_in_text_fields_stay_text(title):
    assert parse(title=title)["title"] == title


def test_numbers_and_booleans_keep_their_types():
    doc = parse(quality="59", heat="-1", published="false")
    assert doc["quality"] == 59 and doc["heat"] == -1 and doc["published"] is False
    assert parse(quality="59.0")["quality"] == 59
    assert parse(published="yes")["published"] is True


def test_published_defaults_to_true():
    assert parse(published=None)["published"] is True


def test_dates_become_utc_datetimes():
    assert parse(publishedDateTime="2025-06-01T10:30:00+02:00")["publishedDateTime"] == datetime(
        2025, 6, 1, 8, 30
    )
    assert parse(publishedDateTime="2025-06-01")["publishedDateTime"] == datetime(2025, 6, 1)
    assert parse(publishedDateTime="'2025-06-01T08:00:00.123456Z'")[
        "publishedDateTime"
    ] == datetime(2025, 6, 1, 8, 0, 0, 123000)


def test_mojibake_is_repaired_and_recorded():
    doc = parse(
        excerpt='"(TNS) â€” The council voted"',
        related=('\n  - title: "Councilâ€™s vote"\n    webUrl: "https://x.example/a"'),
    )
    assert doc["excerpt"] == "(TNS) — The council voted"
    assert doc["related"][0]["title"] == "Council’s vote"
    assert doc["_source"]["repaired"] == ["excerpt", "related[0].title"]


def test_curly_quotes_and_accents_are_not_touched():
    text = "The city’s “No” campaign — café owners"
    doc = parse(excerpt=f'"{text}"')
    assert doc["excerpt"] == text
    assert doc["_source"]["repaired"] == []


def test_topics_as_a_single_string_becomes_one_topic_and_duplicates_go():
    assert parse(topics="AI")["topics"] == ["AI"]
    assert parse(topics="[AI, Space, AI]")["topics"] == ["AI", "Space"]


def test_unknown_fields_are_kept_with_yaml_12_types():
    doc = parse(sponsor="\n  name: Acme\n  paid: true\n  amount: 12\n  note: yes\n  code: '12'")
    assert doc["sponsor"] == {
        "name": "Acme",
        "paid": True,
        "amount": 12,
        "note": "yes",
        "code": "12",
    }


def test_markdown_body_is_kept():
    assert parse(body="# Heading\n\nSome *text*.")["body"] == "# Heading\n\nSome *text*."


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"title": None}, "title is missing"),
        ({"title": '""'}, "title is empty"),
        ({"webUrl": None}, "webUrl is missing"),
        ({"webUrl": '"/news/relative"'}, "webUrl must be an absolute http(s) URL"),
        ({"webUrl": '"javascript:alert(1)"'}, "webUrl must be an absolute http(s) URL"),
        ({"webUrl": '"ftp://example.com/x"'}, "webUrl must be an absolute http(s) URL"),
        ({"webUrl": '"https://ex ample.com/a b"'}, "white space"),
        ({"webUrl": '"https://example.com/a\\u00a0b"'}, "white space"),  # no-break space
        ({"webUrl": '"https://example.com/a\\tb"'}, "white space"),
        ({"webUrl": '"https:///path"'}, "no host"),
        ({"quality": "high"}, "quality must be a whole number, got 'high'"),
        ({"quality": "59.5"}, "quality must be a whole number"),
        ({"quality": "-3"}, "quality must be between 0 and 100"),
        ({"quality": "99999999999999999999999"}, "quality must be between 0 and 100"),
        ({"heat": "-2"}, "-1 means no heat score"),
        ({"published": "maybe"}, "published must be true or false"),
        ({"publishedDateTime": "2020-02-30T10:00:00Z"}, "day is out of range"),
        ({"publishedDateTime": '"May 7, 2020"'}, "must be an ISO-8601 date-time"),
        (
            {"images": ('\n  - url: "https://x.example/i.jpg"\n    width: wide')},
            "images[0].width must be a whole number",
        ),
        ({"related": "\n  title: x\n  webUrl: https://x.example/a"}, "related must be a list"),
        ({"related": '\n  - title: "x"\n    webUrl: "nope"'}, "related[0].webUrl"),
        (
            {"related": '\n  - excerpt: "no title"\n    webUrl: "https://x.example/a"'},
            "related[0].title is missing",
        ),
        ({"provider": "Acme"}, "provider must be a mapping"),
        ({"title": "[a, b]"}, "title must be text, got a list"),
        ({"title": '"' + "x" * 1001 + '"'}, "title is 1,001 characters long"),
        ({"$where": "1"}, "field name '$where'"),
        ({"_id": "abc"}, "field name '_id'"),
        ({"a.b": "1"}, "field name 'a.b'"),
    ],
)
def test_bad_fields_are_rejected_with_a_reason(fields, reason):
    assert reason in rejected(**fields).reason


def test_a_reason_names_the_line_of_the_field():
    err = rejected(quality="high")
    assert err.line == 9  # line 1 is '---', quality is the 8th field


def test_an_unclosed_quote_is_reported_on_its_line_in_the_file():
    # The excerpt's opening quote closes the title's; the parser stumbles on
    # the excerpt's words, a line on. The line to fix is the title's.
    err = rejected(title='"Tram Line Extension Opens Early')
    assert err.line == 3  # line 1 is '---', title the 2nd field
    assert "did not find expected key on line 4" in err.reason
    assert "is its closing quote missing?" in err.reason
    # With no quote after it (the last field), the parser reads on to the
    # closing '---', the line after it.
    err = rejected(secured='"c2VjcmV0LXRva2Vu;AAAA==')
    closing = article_text().splitlines().index("---", 1) + 1
    assert err.line == closing - 1
    assert err.reason.endswith(f"unexpected end of the front matter on line {closing}")


def test_the_line_is_found_from_the_field_path_not_the_words_of_the_reason():
    err = rejected(images='\n  - url: "https://x.example/i.jpg"\n    width: wide')
    assert (err.field, err.line) == ("images[0].width", 18)  # the line of 'images:'
    # A key that is no Python name is found too.
    assert rejected(**{"my-field": "!!binary aGVsbG8="}).line == 34
    # A reason about no one field gets no line, whatever words it starts with.
    err = rejected(field="1", **{"$x": "2"})
    assert (err.field, err.line) == (None, None)


def test_a_rejection_pickles_whole():
    err = pickle.loads(pickle.dumps(rejected(quality="high")))
    assert (err.line, err.field) == (9, "quality") and "whole number" in err.reason


def test_front_matter_that_is_not_a_mapping_is_rejected():
    for text in ("---\n- a\n- b\n---\n", "---\njust text\n---\n"):
        with pytest.raises(Rejected, match="front matter must be a mapping"):
            parse_article(text.encode(), path="a.md", content_hash="h")
    with pytest.raises(Rejected, match="front matter is empty"):
        parse_article(b"---\n---\n", path="a.md", content_hash="h")


def test_mojibake_with_a_c1_control_character_is_repaired():
    doc = parse(excerpt='"He said â€œyesâ€\x9d to the plan"')
    assert doc["excerpt"] == "He said “yes” to the plan"
    assert doc["_source"]["repaired"] == ["excerpt"]


def test_nesting_past_the_limit_in_any_field_is_rejected():
    from loaders.yamlsafe import MAX_DEPTH

    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert f"nests deeper than {MAX_DEPTH}" in rejected(extra=deep).reason
    assert "title must be text, got a list" in rejected(title=deep).reason
    assert "related[0]" in rejected(related=deep).reason
