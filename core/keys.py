"""API keys: who a client is when it says so, kept as hashes in the store.

A key is a random token (``ng_`` and 43 URL-safe characters: 256 bits from
:mod:`secrets`) shown once, when it is made; the store keeps only its SHA-256
(the document's ``_id``), so a copy of the database gives no one a key. A slow
password hash would add nothing: the token is random, not chosen, and
guessing 256 bits is out of reach however fast each guess is. Each key also
has a short public ``id`` (the first 12 hex digits of that hash) by which
``newsgraph keys list`` shows it and ``newsgraph keys revoke`` names it.

Revoking marks the key, rather than deleting it, so ``keys list`` still shows
when it was made and revoked; a revoked key finds nothing (:func:`find`).
The API asks the store through its gateway and keeps each answer a few
seconds (``api.http.identity``); the command line calls these functions directly.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection

#: What every key starts with, so that a key (unlike the admin token, which
#: may be anything) is known as one before the store is asked.
PREFIX = "ng_"
#: Hex digits of the hash that make the public id.
ID_LENGTH = 12
#: Longest name a key may have (it is a label for people).
MAX_NAME = 200


@dataclass(frozen=True)
class Key:
    """A key as the store holds it: never its secret."""

    id: str
    name: str
    created: datetime
    revoked: datetime | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Key:
        revoked = doc.get("revoked")
        return cls(
            doc["id"],
            doc.get("name", ""),
            _utc(doc["created"]),
            None if revoked is None else _utc(revoked),
        )


def _utc(when: datetime) -> datetime:
    """A time from the store (which hands back naive UTC), as UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def digest(token: str) -> str:
    """The SHA-256 of a token, as the store keeps it."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def create(keys: Collection[Any], name: str) -> tuple[str, Key]:
    """A new key named ``name``: its token (shown once) and its record."""
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a key's name must be 1 to {MAX_NAME} characters")
    token = PREFIX + secrets.token_urlsafe(32)
    hashed = digest(token)
    key = Key(hashed[:ID_LENGTH], name, datetime.now(UTC).replace(microsecond=0))
    keys.insert_one({"_id": hashed, "id": key.id, "name": name, "created": key.created})
    return token, key


def find(keys: Collection[Any], token: str) -> Key | None:
    """The live key whose token this is, or None (unknown, or revoked)."""
    if not looks_like_key(token):
        return None
    doc = keys.find_one({"_id": digest(token)})
    if doc is None or doc.get("revoked") is not None:
        return None
    return Key.from_doc(doc)


def listed(keys: Collection[Any]) -> list[Key]:
    """Every key, revoked ones too, oldest first."""
    # Sorted here: there are few keys, and no index to sort them by.
    found = sorted(keys.find({}, {"_id": 0}), key=lambda doc: (doc["created"], doc["id"]))
    return [Key.from_doc(doc) for doc in found]


def revoke(keys: Collection[Any], key_id: str) -> Key | None:
    """Revoke the live key with this public id; the key, or None if there is
    no live key by that id."""
    now = datetime.now(UTC).replace(microsecond=0)
    # No projection: FerretDB v1 does not take one with findAndModify.
    found = keys.find_one_and_update({"id": key_id, "revoked": None}, {"$set": {"revoked": now}})
    if found is None:
        return None
    return Key.from_doc({**found, "revoked": now})
