"""Trusted documents: an app's own operations, listed when it was built.

A mobile app's build writes the operations it sends into a manifest
(``NEWSGRAPH_TRUSTED_MANIFEST``), in any of the formats the clients' tooling
writes:

- Apollo's persisted query list: ``{"format": "apollo-persisted-query-manifest",
  "version": 1, "operations": [{"id", "name", "type", "body"}]}``;
- Relay's (``relay-compiler`` with ``persistConfig``) and GraphQL Codegen's
  client preset (``persistedDocuments``): a JSON object ``{"<id>": "<text>"}``.

``NEWSGRAPH_TRUSTED_DOCUMENTS`` says what it is for:

- ``off``: it is not read;
- ``allow``: a request naming a listed document by id runs it, with no
  registration round trip; anything else runs as it would without a list;
- ``enforce``: only listed documents run, named by id or sent as identical
  text; the admin may still run anything.

A request names a document by ``documentId`` (GraphQL over HTTP's persisted
documents; also ``doc_id`` and ``id``, as Relay's examples and some clients
send it; ``api.http.view`` moves it into the request's ``extensions``), or
by Apollo's ``extensions.persistedQuery.sha256Hash``; each document is found
under its id in the manifest and under the SHA-256 of its text.
:class:`TrustDocuments` is the pipeline's step, before persisted queries are
resolved and before anything is parsed, so a refusal costs a dictionary
look-up, whichever way the request came (GET, POST, WebSocket).

A manifest that cannot be used stops the server at start with a
:class:`~core.config.ConfigError` that says why: unreadable, over
:data:`MAX_MANIFEST_BYTES`, not JSON, not one of the formats, an id listed
twice with different texts, or a document that does not parse within the
token limit (it could never run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphql import GraphQLError, parse

from api.errors import ClientError
from api.operation.request import Operation, Refused, Request
from api.schema.context import Context
from core.config import ConfigError, Settings

#: The largest manifest read (bytes): thousands of operations fit in far less.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Longest id a manifest may give a document.
MAX_ID = 256
#: Fields of a request (body or query string) that name a document, in the
#: order they are looked for; the first found goes into ``extensions.documentId``.
DOCUMENT_ID_FIELDS = ("documentId", "doc_id", "id")
APOLLO_FORMAT = "apollo-persisted-query-manifest"
SETTING = "NEWSGRAPH_TRUSTED_MANIFEST"


class UntrustedDocumentError(ClientError):
    """Enforce mode: the request is not one of the trusted documents."""

    code = "UNTRUSTED_DOCUMENT"


@dataclass(frozen=True)
class TrustedDocuments:
    mode: str = "off"
    #: Each document's text by its id and by the SHA-256 of its text.
    by_id: Mapping[str, str] = field(default_factory=dict)
    texts: frozenset[str] = frozenset()

    @classmethod
    def for_settings(cls, settings: Settings) -> TrustedDocuments:
        if settings.trusted_documents == "off":
            return cls()
        if not settings.trusted_manifest:
            raise ConfigError(
                f"NEWSGRAPH_TRUSTED_DOCUMENTS={settings.trusted_documents} needs {SETTING}, "
                "the manifest of the documents to trust"
            )
        documents = load_manifest(Path(settings.trusted_manifest), settings.max_tokens)
        by_id = dict(documents)
        for text in documents.values():
            by_id.setdefault(hashlib.sha256(text.encode()).hexdigest(), text)
        return cls(settings.trusted_documents, by_id, frozenset(documents.values()))

    def __len__(self) -> int:
        return len(self.texts)

    def find(self, document_id: str) -> str | None:
        """The text listed under an id (``sha256:<hex>`` is the hex alone)."""
        found = self.by_id.get(document_id)
        if found is None and document_id.startswith("sha256:"):
            found = self.by_id.get(document_id[len("sha256:") :].lower())
        return found


def load_manifest(path: Path, max_tokens: int) -> dict[str, str]:
    """The documents of a manifest, by id; or a ConfigError saying what is wrong."""
    where = f"{SETTING} {path}"
    try:
        with path.open("rb") as manifest:
            raw = manifest.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ConfigError(
            f"{where}: over {MAX_MANIFEST_BYTES:,} bytes, more than a manifest of an app's "
            "operations needs; is it the right file?"
        )
    try:
        data = json.loads(raw, object_pairs_hook=_pairs)
    except _Duplicate as exc:
        raise ConfigError(f"{where}: the id {exc.args[0]!r} is listed twice") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    documents: dict[str, str] = {}
    for document_id, text in _entries(data, where):
        if not document_id or len(document_id) > MAX_ID:
            raise ConfigError(f"{where}: a document's id must be 1 to {MAX_ID} characters")
        if documents.get(document_id, text) != text:
            raise ConfigError(f"{where}: the id {document_id!r} names two different documents")
        try:
            parse(text, no_location=True, max_tokens=max_tokens)
        except GraphQLError as exc:
            raise ConfigError(
                f"{where}: the document {document_id!r} cannot run: {exc.message}"
            ) from None
        documents[document_id] = text
    if not documents:
        raise ConfigError(f"{where}: it lists no documents")
    return documents


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice with different values
    (json.loads would keep the last silently)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found and found[key] != value:
            raise _Duplicate(key)
        found[key] = value
    return found


def _entries(data: Any, where: str) -> Iterator[tuple[str, str]]:
    """(id, text) of each document, in either shape."""
    expected = (
        f'expected Apollo\'s persisted query list ({{"format": "{APOLLO_FORMAT}", '
        '"version": 1, "operations": [...]}) or an object of id -> document text '
        "(Relay's persistOutput, GraphQL Codegen's persistedDocuments)"
    )
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {expected}")
    if "format" in data:
        if data.get("format") != APOLLO_FORMAT or data.get("version") != 1:
            raise ConfigError(f"{where}: unknown format or version; {expected}")
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ConfigError(f"{where}: `operations` must be a list")
        for n, operation in enumerate(operations):
            if not isinstance(operation, dict) or not all(
                isinstance(operation.get(k), str) for k in ("id", "body")
            ):
                raise ConfigError(
                    f"{where}: operations[{n}] must be an object with a string `id` and `body`"
                )
            yield operation["id"], operation["body"]
        return
    for document_id, text in data.items():
        if not isinstance(text, str):
            raise ConfigError(
                f"{where}: the value under {document_id!r} is not a string; {expected}"
            )
        yield document_id, text


def document_id(request: Request) -> str | None:
    """The id a request names its document by, if any."""
    extensions = request.extensions or {}
    named = extensions.get("documentId")
    if isinstance(named, str):
        return named
    persisted = extensions.get("persistedQuery")
    if isinstance(persisted, dict) and isinstance(persisted.get("sha256Hash"), str):
        return str(persisted["sha256Hash"]).lower()
    return None


def with_document_id(data: Any) -> Any:
    """A request's body or query string with the id it names its document
    by (:data:`DOCUMENT_ID_FIELDS`) moved into its ``extensions``, where
    strawberry hands it on (it drops fields it does not know)."""
    if not isinstance(data, dict):
        return data
    named = next((data[f] for f in DOCUMENT_ID_FIELDS if isinstance(data.get(f), str)), None)
    extensions = data.get("extensions")
    if named is None or not isinstance(extensions, dict | None):
        return data
    return {**data, "extensions": {**(extensions or {}), "documentId": named}}


class TrustDocuments:
    """Step, before persisted queries are resolved: a listed document named
    by id is the query (``allow`` and ``enforce``); in ``enforce`` mode
    anything else is refused unless the admin asks."""

    def __init__(self, trusted: TrustedDocuments) -> None:
        self.trusted = trusted

    def __call__(self, op: Operation) -> None:
        if self.trusted.mode == "off":
            return
        lenient = self.trusted.mode == "allow" or (
            isinstance(op.context, Context) and op.context.admin
        )
        named = document_id(op.request)
        if named is not None:
            text = self.trusted.find(named)
            sent = op.request.query
            if text is not None and sent and sent != text:
                if lenient:  # as without a list: the hash is checked against the query
                    return
                raise _refused(f"the query sent is not the document listed as {named!r}")
            if text is not None:
                op.query = text
                return
            if not lenient:
                raise _refused(f"no trusted document has the id {named[:MAX_ID]!r}")
            return
        sent = op.request.query
        if lenient or sent is None or sent in self.trusted.texts:
            return
        raise _refused("the query is not one of this server's trusted documents")


def _refused(why: str) -> Refused:
    error = UntrustedDocumentError(
        f"{why}: this server runs only the operations its apps were built with "
        "(NEWSGRAPH_TRUSTED_DOCUMENTS=enforce)"
    )
    return Refused(GraphQLError(str(error), original_error=error))
