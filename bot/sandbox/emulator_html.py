"""Telegram "HTML" parse mode, validated the way the Bot API does it.

The emulator must reject what api.telegram.org rejects, so bots that pass
here do not fail in production because of an unescaped ``<`` or ``&`` in
user-provided text. The parser turns markup into plain text plus a list of
MessageEntity dicts with UTF-16 offsets, exactly as Telegram returns them.
"""

from __future__ import annotations

import re
from typing import Any

SUPPORTED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)

_SIMPLE_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}

# Telegram understands only these named entities (plus numeric ones).
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]*);")
_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*")


class ParseEntitiesError(ValueError):
    """Raised with the text Telegram puts after "Bad Request: can't parse entities: "."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode the HTML entity at ``text[i]`` -> (character, length) or None."""
    m = _ENTITY_RE.match(text, i)
    if m is None:
        return None
    body = m.group(1)
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    elif body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], m.end() - i
    else:
        return None
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end() - i


def _unescape_attr(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "&":
            dec = _decode_entity(value, i)
            if dec is not None:
                out.append(dec[0])
                i += dec[1]
                continue
        out.append(value[i])
        i += 1
    return "".join(out)


def _parse_attrs(text: str, i: int, tag: str, tag_start: int) -> tuple[dict[str, str], int]:
    """Parse attributes after a tag name; return (attrs, index after '>')."""
    attrs: dict[str, str] = {}
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise ParseEntitiesError(
                f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
            )
        if text[i] == ">":
            return attrs, i + 1
        m = _ATTR_NAME_RE.match(text, i)
        if m is None:
            raise ParseEntitiesError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, i)}'
            )
        name = m.group(0).lower()
        i = m.end()
        while i < n and text[i].isspace():
            i += 1
        value = ""
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise ParseEntitiesError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
                )
            if text[i] in "\"'":
                quote = text[i]
                end = text.find(quote, i + 1)
                if end < 0:
                    raise ParseEntitiesError(
                        f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
                    )
                value = text[i + 1 : end]
                i = end + 1
            else:
                start = i
                while i < n and not text[i].isspace() and text[i] not in ">":
                    i += 1
                value = text[start:i]
        attrs[name] = _unescape_attr(value)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-HTML ``text`` into (plain text, entities).

    Raises ParseEntitiesError for unknown or unbalanced tags and for a bare
    ``<`` or ``&`` that is not part of a tag or an entity.
    """
    out: list[str] = []
    out_u16 = 0  # running UTF-16 length of ``out``; entity offsets use it
    # stack items: (tag, start offset in UTF-16, attrs)
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            dec = _decode_entity(text, i)
            if dec is None:
                raise ParseEntitiesError(
                    f"Unsupported HTML entity or unescaped '&' at byte offset "
                    f"{_byte_offset(text, i)}; use &amp; for a literal '&'"
                )
            out.append(dec[0])
            out_u16 += utf16_len(dec[0])
            i += dec[1]
            continue
        if ch != "<":
            out.append(ch)
            out_u16 += 2 if ord(ch) > 0xFFFF else 1
            i += 1
            continue
        tag_start = i
        if i + 1 < n and text[i + 1] == "/":
            m = _NAME_RE.match(text, i + 2)
            name = m.group(0).lower() if m else ""
            j = m.end() if m else i + 2
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != ">":
                raise ParseEntitiesError(
                    f"Unclosed end tag at byte offset {_byte_offset(text, tag_start)}"
                )
            if not stack:
                raise ParseEntitiesError(
                    f'Unexpected end tag "</{name}>" at byte offset '
                    f"{_byte_offset(text, tag_start)}"
                )
            open_tag, start, attrs = stack.pop()
            if open_tag != name:
                raise ParseEntitiesError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, tag_start)}, "
                    f'expected "</{open_tag}>", found "</{name}>"'
                )
            _close_entity(open_tag, start, out_u16, attrs, stack, entities)
            i = j + 1
            continue
        m = _NAME_RE.match(text, i + 1)
        name = m.group(0).lower() if m else ""
        if not name or name not in SUPPORTED_TAGS:
            raise ParseEntitiesError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, tag_start)}'
            )
        assert m is not None  # for mypy: name is non-empty only when m matched
        attrs, i = _parse_attrs(text, m.end(), name, tag_start)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise ParseEntitiesError('Tag "span" must have class "tg-spoiler"')
        if name == "tg-emoji" and not attrs.get("emoji-id"):
            raise ParseEntitiesError('Tag "tg-emoji" must have attribute "emoji-id"')
        stack.append((name, out_u16, attrs))
    if stack:
        raise ParseEntitiesError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_entity(
    tag: str,
    start: int,
    end: int,
    attrs: dict[str, str],
    stack: list[tuple[str, int, dict[str, str]]],
    entities: list[dict[str, Any]],
) -> None:
    """Append the entity for a just-closed tag; empty entities are dropped like Telegram."""
    length = end - start
    if length <= 0:
        return
    entity: dict[str, Any]
    if tag == "a":
        href = attrs.get("href", "")
        m = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if m:
            entity = {"type": "text_mention", "user": {"id": int(m.group(1))}}
        elif href:
            entity = {"type": "text_link", "url": href}
        else:
            return  # Telegram silently ignores links without a usable href
    elif tag == "blockquote":
        is_exp = "expandable" in attrs
        entity = {"type": "expandable_blockquote" if is_exp else "blockquote"}
    elif tag == "tg-emoji":
        entity = {"type": "custom_emoji", "custom_emoji_id": attrs["emoji-id"]}
    elif tag == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> is one pre entity with a language
        lang = attrs.get("class", "")
        if lang.startswith("language-"):
            stack[-1][2]["_language"] = lang[len("language-") :]
        return
    else:
        entity = {"type": _SIMPLE_TYPES[tag]}
        if tag == "pre" and attrs.get("_language"):
            entity["language"] = attrs["_language"]
    entity["offset"] = start
    entity["length"] = length
    entities.append(entity)
