"""Index keys: any BSON value as bytes that sort as MongoDB sorts the values.

SQLite compares BLOBs with memcmp, so an index entry whose key is these bytes
is walked by SQLite's B-tree in MongoDB's order: by type first (MinKey, null,
numbers, strings, objects, arrays, binary, ObjectId, bool, dates, timestamps,
regexes, MaxKey), then by value. Every encoding starts with its type's byte
and is self-delimiting (fixed length, or escaped and terminated), so the keys
of a compound index are the fields' encodings concatenated and still compare
field by field; a descending field is its encoding with every byte inverted.
Every encoding is at least two bytes long: a single byte is a *boundary*
between types (before every value of a type, or after), which range bounds use.

Numbers compare as doubles: integers beyond 2**53 that round to the same
double tie on the key (the full filter then decides, see ``core.engine.plan``).
"""

from __future__ import annotations

import calendar
import math
import re
import struct
from datetime import datetime
from typing import Any

from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

# Type bytes, in MongoDB's order of types.
MINKEY = 0x01
UNDEFINED = 0x04  # what an empty array is indexed as
NULL = 0x05  # null and missing
NUMBER = 0x10
STRING = 0x14
OBJECT = 0x18
ARRAY = 0x1C
BINARY = 0x20
OBJECTID = 0x24
BOOL = 0x28
DATE = 0x2C
TIMESTAMP = 0x30
REGEX = 0x34
MAXKEY = 0x7E

NULL_KEY = bytes([NULL, 0])
_STRING = bytes([STRING])
EMPTY_ARRAY_KEY = bytes([UNDEFINED, 0])
_INVERT = bytes.maketrans(bytes(range(256)), bytes(range(255, -1, -1)))
_SIGN = 1 << 63
_MASK = (1 << 64) - 1


def encode(value: Any) -> bytes:
    """The key of one value, ascending."""
    if value is None:
        return NULL_KEY
    kind = type(value)
    if kind is str:
        raw: bytes = value.encode("utf-8", "surrogatepass")
        if b"\x00" in raw:
            raw = raw.replace(b"\x00", b"\x00\xff")
        return _STRING + raw + b"\x00\x00"
    if kind is bool:
        return bytes([BOOL, 1 if value else 0])
    if kind is datetime:
        return bytes([DATE]) + struct.pack(">Q", (millis(value) + _SIGN) & _MASK)
    if kind is int or kind is float or kind is Int64:
        return bytes([NUMBER]) + _number(float(value))
    if isinstance(value, dict):
        parts = [bytes([OBJECT])]
        for name, item in value.items():
            key = encode(item)
            parts += [key[:1], _text(str(name)), key]
        return b"".join(parts) + b"\x00"
    if isinstance(value, list | tuple):
        return bytes([ARRAY]) + b"".join(encode(item) for item in value) + b"\x00"
    if isinstance(value, str):
        return bytes([STRING]) + _text(str(value))
    if isinstance(value, ObjectId):
        return bytes([OBJECTID]) + value.binary
    if isinstance(value, bytes):  # Binary is bytes too
        subtype = value.subtype if isinstance(value, Binary) else 0
        return bytes([BINARY]) + struct.pack(">IB", len(value), subtype) + bytes(value)
    if isinstance(value, bool):
        return bytes([BOOL, 1 if value else 0])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + _number(float(value))
    if isinstance(value, datetime):
        return bytes([DATE]) + struct.pack(">Q", (millis(value) + _SIGN) & _MASK)
    if isinstance(value, Decimal128):
        return bytes([NUMBER]) + _number(float(value.to_decimal()))
    if isinstance(value, Timestamp):
        return bytes([TIMESTAMP]) + struct.pack(">II", value.time, value.inc)
    if isinstance(value, re.Pattern | Regex):
        flags = value.flags if isinstance(value.flags, str) else str(value.flags)
        return bytes([REGEX]) + _text(str(value.pattern)) + _text(flags)
    if isinstance(value, MinKey):
        return bytes([MINKEY, 0])
    if isinstance(value, MaxKey):
        return bytes([MAXKEY, 0])
    raise TypeError(f"the embedded engine cannot index a value of type {kind.__name__}")


def invert(key: bytes) -> bytes:
    """A key for a descending field: the same bytes, each inverted."""
    return key.translate(_INVERT)


def boundary(type_byte: int, descending: bool) -> bytes:
    """The boundary before every value of ``type_byte`` (ascending); for a
    descending field, the boundary that same point becomes (after them)."""
    return bytes([256 - type_byte if descending else type_byte])


def is_boundary(key: bytes) -> bool:
    return len(key) == 1


def successor(prefix: bytes) -> bytes:
    """The least key greater than every key starting with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("no key follows a prefix of only 0xff bytes")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def millis(value: datetime) -> int:
    """What BSON stores of a datetime: milliseconds since the epoch, UTC."""
    offset = value.utcoffset()
    if offset is not None:
        value = value.replace(tzinfo=None) - offset
    return calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000


def type_byte(value: Any) -> int:
    return encode(value)[0]


def _number(number: float) -> bytes:
    if math.isnan(number):
        return b"\x00" * 8  # NaN sorts before every other number, as in MongoDB
    if number == 0:
        number = 0.0  # -0.0 equals 0.0
    bits: int = struct.unpack(">Q", struct.pack(">d", number))[0]
    bits = bits ^ _MASK if bits & _SIGN else bits | _SIGN
    return struct.pack(">Q", bits)


def _text(text: str) -> bytes:
    # NUL escaped as 00 ff and the end marked 00 00: a prefix sorts first.
    raw = text.encode("utf-8", "surrogatepass")
    return raw.replace(b"\x00", b"\x00\xff") + b"\x00\x00"
