"""Give parsed front matter the document shape of :mod:`core.document`.

Each known field is checked and converted to its declared type; the first
problem rejects the whole file (a document is written whole or not at all), with
the field's path (``related[1].images[0].width``) in the reason and in
:attr:`Rejected.field` (the parser finds the line from it). Fields newsgraph
does not know are kept, their unquoted scalars read as YAML 1.2 core types
(``true``/``false``, ``null``, integers, floats; anything else stays text).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

import ftfy

from core.document import (
    Bool,
    DateTime,
    Domain,
    FieldKind,
    Int,
    ListOf,
    Obj,
    Text,
    Url,
)
from loaders.errors import Rejected
from loaders.yamlsafe import MAX_DEPTH, Plain

# Only ftfy's encoding repairs: curly quotes, ligatures and full-width letters
# are the author's choice, not damage.
_REPAIR = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    uncurl_quotes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)
_INT = re.compile(r"[+-]?\d+(?:\.0*)?")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})
_MAX_NODES = 50_000
_SPACE = re.compile(r"\s")  # str.isspace's characters, searched in C


class Normalizer:
    """One file's normalization: collects the paths of repaired text fields."""

    def __init__(self) -> None:
        self.repaired: list[str] = []
        self._nodes = 0

    def object(self, value: Any, kind: Obj, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            what = path or "the front matter"
            raise Rejected(
                f"{what} must be a mapping of fields, got {_describe(value)}", field=path or None
            )
        out: dict[str, Any] = {}
        for key, item in value.items():
            key = _field_name(key, path)
            where = f"{path}.{key}" if path else key
            spec = kind.fields.get(key)
            if spec is None:
                out[key] = self.unknown(item, where, depth=path.count(".") + 1)
                continue
            converted = self.field(item, spec, where)
            if converted is not None:
                out[key] = converted
        for key, spec in kind.fields.items():
            if getattr(spec, "required", False) and key not in out:
                where = f"{path}.{key}" if path else key
                missing = "is empty" if key in value else "is missing"
                raise Rejected.at(
                    where, f"{missing}: every {'story' if path else 'article'} needs a {key}"
                )
            if isinstance(spec, Bool) and spec.default is not None and key not in out:
                out[key] = spec.default
        return out

    def field(self, value: Any, spec: FieldKind, path: str) -> Any:
        self._count(path)
        if isinstance(spec, Text):
            return self.text(value, spec, path)
        if isinstance(spec, Url):
            return url(value, path)
        if isinstance(spec, DateTime):
            return datetime_utc(value, path)
        if isinstance(spec, Int):
            return integer(value, spec, path)
        if isinstance(spec, Bool):
            return boolean(value, path)
        if isinstance(spec, Domain):
            text = _text(value, path)
            return text.lower() if text else None
        if isinstance(spec, ListOf):
            return self.list(value, spec, path)
        return self.object(value, spec, path) if value is not None else None

    def text(self, value: Any, spec: Text, path: str) -> str | None:
        text = _text(value, path)
        if not text:
            return None
        if len(text) > spec.max_length:
            raise Rejected.at(
                path,
                f"is {len(text):,} characters long, over the {spec.max_length:,}-character limit",
            )
        if spec.repair and not text.isascii():
            fixed = ftfy.fix_text(text, _REPAIR)
            if fixed != text:
                self.repaired.append(path)
                text = fixed
        return text

    def list(self, value: Any, spec: ListOf, path: str) -> list[Any] | None:
        if value is None or value == "":
            return None
        if isinstance(value, str) and spec.scalar_ok:
            value = [value]
        if not isinstance(value, list):
            raise Rejected.at(path, f"must be a list, got {_describe(value)}")
        if len(value) > spec.max_items:
            raise Rejected.at(
                path, f"has {len(value):,} items, over the limit of {spec.max_items:,}"
            )
        items = [self.field(item, spec.item, f"{path}[{i}]") for i, item in enumerate(value)]
        items = [item for item in items if item is not None]
        if isinstance(spec.item, Text):  # topics: each once, in first-seen order
            items = list(dict.fromkeys(items))
        return items

    def unknown(self, value: Any, path: str, depth: int) -> Any:
        """A field the shape does not declare: kept, with YAML 1.2 core types."""
        self._count(path)
        if depth > MAX_DEPTH:
            raise Rejected.at(path, f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            return {
                (name := _field_name(k, path)): self.unknown(v, f"{path}.{name}", depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.unknown(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, Plain):
            return core_scalar(value)
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day)  # BSON has no plain date
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            return str(value)  # BSON integers are 64-bit; keep the digits as text
        if isinstance(value, bytes):
            raise Rejected.at(path, "is binary (!!binary), which articles cannot hold")
        return value

    def _count(self, path: str) -> None:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            # About the front matter as a whole, not the field it stopped at.
            raise Rejected(f"front matter has more than {_MAX_NODES:,} values (at {path})")


# -- scalar conversions -------------------------------------------------------


def _text(value: Any, path: str) -> str:
    if isinstance(value, dict | list):
        raise Rejected.at(path, f"must be text, got {_describe(value)}")
    if value is None:
        return ""
    if isinstance(value, bool):  # an explicit !!bool: give back the word
        return "true" if value else "false"
    return str(value).strip()


def url(value: Any, path: str) -> str | None:
    text = _text(value, path)
    if not text:
        return None
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise Rejected.at(path, f"must be an absolute http(s) URL, got {_short(text)}")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not host or "@" in host:
        raise Rejected.at(path, f"has no host name: {_short(text)}")
    if _SPACE.search(text):
        raise Rejected.at(path, f"contains white space; encode it as %20: {_short(text)}")
    if len(text) > 4096:
        raise Rejected.at(path, f"is {len(text):,} characters long, over the 4,096 limit")
    return text


def datetime_utc(value: Any, path: str) -> datetime | None:
    """ISO-8601 text -> naive UTC datetime at millisecond precision (BSON's)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = _text(value, path)
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            detail = "" if "Invalid isoformat" in str(exc) else f" ({exc})"
            raise Rejected.at(
                path,
                "must be an ISO-8601 date-time such as 2020-05-07T15:58:00Z, "
                f"got {_short(text)}{detail}",
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def integer(value: Any, spec: Int, path: str) -> int | None:
    if isinstance(value, bool):
        raise Rejected.at(path, f"must be a whole number, got {value!r}")
    if isinstance(value, int | float):
        text = repr(value)
    else:
        text = _text(value, path)
        if not text:
            return None
    if not _INT.fullmatch(text):
        raise Rejected.at(path, f"must be a whole number, got {_short(text)}")
    number = int(text.split(".", 1)[0])
    if not spec.minimum <= number <= spec.maximum:
        note = f"; {spec.note}" if spec.note else ""
        raise Rejected.at(
            path, f"must be between {spec.minimum} and {spec.maximum}{note}, got {number}"
        )
    return number


def boolean(value: Any, path: str) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value, path).lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Rejected.at(path, f"must be true or false, got {_short(text)}")


def core_scalar(text: str) -> Any:
    """YAML 1.2 core schema for an unquoted scalar."""
    lowered = text.lower()
    if lowered in ("", "~", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"[+-]?\d+", text) and abs(int(text)) < 2**63:
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return str(text)


def _field_name(key: Any, path: str) -> str:
    if isinstance(key, dict | list) or key is None:
        where = path or "front matter"
        raise Rejected(f"{where} has a key that is not a name: {key!r}", field=path or None)
    name = str(key)
    if not name or name.startswith(("$", "_")) or "." in name or "\x00" in name:
        # No field: the reason is about a name that cannot be one.
        raise Rejected(
            f"field name {_short(name)} in {path or 'front matter'} is not allowed: names "
            "may not be empty, start with '$' or '_' (reserved), or contain '.'"
        )
    return name


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"the value {_short(str(value))}"


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
