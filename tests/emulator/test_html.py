"""Telegram-HTML parsing rules of the emulator."""

import pytest

from bot.sandbox.emulator_html import ParseEntitiesError, parse_html


def test_plain_tags_become_entities_with_utf16_offsets() -> None:
    text, entities = parse_html("😀 <b>bold</b> &amp; <i>it</i>")
    assert text == "😀 bold & it"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "italic", "offset": 10, "length": 2},
    ]


def test_links_spoilers_pre_language_and_entities() -> None:
    text, entities = parse_html(
        '<a href="https://example.org/?a=1&amp;b=2">x</a><span class="tg-spoiler">s</span>'
        '<pre><code class="language-python">p</code></pre>&#65;&#x42;&lt;&gt;&quot;'
    )
    assert text == 'xspAB<>"'
    assert {
        "type": "text_link",
        "url": "https://example.org/?a=1&b=2",
        "offset": 0,
        "length": 1,
    } in entities
    assert {"type": "spoiler", "offset": 1, "length": 1} in entities
    assert {"type": "pre", "language": "python", "offset": 2, "length": 1} in entities


@pytest.mark.parametrize(
    ("markup", "fragment"),
    [
        ("a < b", 'Unsupported start tag ""'),
        ("<foo>x</foo>", 'Unsupported start tag "foo"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag"),
        ("fish & chips", "unescaped '&'"),
        ("&nbsp;", "unescaped '&'"),
        ('<span class="x">y</span>', 'must have class "tg-spoiler"'),
        ("<b", "Unclosed start tag"),
    ],
)
def test_invalid_markup_is_rejected(markup: str, fragment: str) -> None:
    with pytest.raises(ParseEntitiesError) as info:
        parse_html(markup)
    assert fragment in str(info.value)


def test_bare_greater_than_is_fine() -> None:
    assert parse_html("a > b") == ("a > b", [])
