"""A root ``article`` with ``related { article }`` below it (the mobile query)
asks its two finds as one worker-thread job (``api.execution.plan.fetch``,
``api.data.gateway.Chain``), and answers exactly as the same plan asking them
one by one, and as ordinary execution: the same bytes, store calls and
failures, on both engines. Each test counts the jobs, so a plan that silently
took the old way would fail it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pymongo.errors
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.data import gateway as gateway_module
from api.data.gateway import Find, Gateway
from api.data.slots import StoreSlots
from core.config import Settings
from core.document import Doc, article_id
from core.store import Store
from tests.api.fixtures import ADMIN_TOKEN, refilled_at_once

MOBILE = """query($id: ID!) { article(id: $id) { title webUrl
  related { title webUrl article { id title related { title } } } } }"""
FIRST_ONE = """query($id: ID!) { article(id: $id) { title
  related(first: 1) { title article { id title } } } }"""
FILTERED = """query($id: ID!) { article(id: $id) { title
  related(filter: {providerDomain: "b.example"}) { title article { id title } } } }"""

NAMES = ("root", "lone", "hidden", "missing", "odd", "x", "cites", "strange")
URLS = {name: f"https://chain.example/{name}" for name in NAMES}
IDS = {name: article_id(url) for name, url in URLS.items()}


def story(name: str, domain: str = "a.example", url: Any = None) -> Doc:
    return {
        "title": f"story {name}",
        "webUrl": URLS[name] if url is None else url,
        "provider": {"name": domain, "domain": domain},
    }


def article(name: str, related: list[Doc], published: bool = True) -> Doc:
    return {
        "_id": IDS[name],
        "webUrl": URLS[name],
        "title": f"article {name}",
        "published": published,
        "publishedDateTime": datetime(2024, 1, 1),
        "category": "chain",
        "type": "article",
        "related": related,
    }


def documents() -> list[Doc]:
    """``root`` relates to a published article, an unpublished one, one never
    stored, and (twice) itself; ``odd``'s one story has a URL that is not
    text; ``cites`` relates to ``strange``, whose own ``related`` is not a list."""
    return [
        article(
            "root",
            [
                story("lone"),
                story("hidden", "b.example"),
                story("missing"),
                story("root", "b.example"),
                story("root"),
            ],
        ),
        article("lone", []),
        article("hidden", [story("lone")], published=False),
        article("odd", [story("x", url=7)]),
        article("cites", [story("strange")]),
        {**article("strange", []), "related": "not a list"},
    ]


class Failing(Gateway):
    """Fails the request's ``which``-th find (from 1), on either path: both
    ask the store through ``_find_now``."""

    chains = True

    def __init__(self, inner: Gateway, which: int, error: Exception) -> None:
        super().__init__(inner.store, inner.op_timeout_ms, inner.slots)
        self.which, self.error, self.finds = which, error, 0

    def _find_now(self, find: Find) -> list[Doc]:
        self.finds += 1
        if self.finds == self.which:
            raise self.error
        return super()._find_now(find)


@pytest.fixture
def chain_store(store: Store) -> Store:
    store.articles.insert_many(documents())
    return store


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The jobs the store calls took: each the worker-thread job the store
    slots ran, or the read the event loop answered itself (an embedded
    store's small read: ``Gateway._on_loop``), whichever answered it."""
    ran: list[int] = []
    original = StoreSlots.run
    on_loop = Gateway._on_loop

    async def run(self: StoreSlots, call: Any, heavy: bool = False) -> Any:
        ran.append(1)
        return await original(self, call, heavy)

    def answered(self: Gateway, call: Any) -> Any:
        answer = on_loop(self, call)
        if answer is not gateway_module.hop and answer is not gateway_module._UNOPENED:
            ran.append(1)
        return answer

    monkeypatch.setattr(StoreSlots, "run", run)
    monkeypatch.setattr(Gateway, "_on_loop", answered)
    return ran


Mode = str  # chained, unchained (the plan's calls one by one), ordinary


@pytest.fixture
def ask(
    chain_store: Store, settings: Settings, jobs: list[int], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """``ask(mode, query, variables, admin=False, gateway=None, **settings)``:
    the raw body, the store calls it reports, and the jobs it took."""
    base = dataclasses.replace(refilled_at_once(settings), admin_token=ADMIN_TOKEN)
    clients: list[TestClient] = []

    def run(
        mode: Mode,
        query: str,
        variables: dict[str, Any],
        admin: bool = False,
        gateway: Any = None,
        **changes: Any,
    ) -> tuple[bytes, Any, int]:
        settings_ = dataclasses.replace(base, compiled=mode != "ordinary", **changes)
        with monkeypatch.context() as patch:
            if mode == "unchained":
                patch.setattr(Gateway, "can_chain", lambda self: False)
            made = None if gateway is None else gateway(Gateway(chain_store, 10_000))
            client = TestClient(create_app(settings_, chain_store, gateway=made))
            clients.append(client)
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
            jobs.clear()
            response = client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
        calls = response.json().get("extensions", {}).get("cost", {}).get("actual", {})
        return response.content, calls.get("storeCalls"), len(jobs)

    yield run
    for client in clients:
        client.close()


MODES = ("chained", "unchained", "ordinary")


def alike(
    ask: Any, query: str, variables: dict[str, Any], modes: tuple[Mode, ...] = MODES, **kw: Any
) -> dict[Mode, Any]:
    """Each mode's answer; every body and store-call count the same."""
    answers = {mode: ask(mode, query, variables, **kw) for mode in modes}
    bodies = {(body, calls) for body, calls, _ in answers.values()}
    assert len(bodies) == 1, answers
    return answers


@pytest.mark.parametrize("admin", [False, True])
def test_the_mobile_query_is_one_job_of_two_calls_answered_alike(ask: Any, admin: bool) -> None:
    answers = alike(ask, MOBILE, {"id": IDS["root"]}, admin=admin)
    body, calls, jobs = answers["chained"]
    assert calls == 2 and jobs == 1
    assert answers["unchained"][2] == 2
    assert b'"article":{"id":"' + IDS["lone"].encode() in body
    assert (b"article hidden" in body) is admin  # hidden from all but the admin


@pytest.mark.parametrize(
    ("name", "admin"),
    [("lone", False), ("missing", False), ("hidden", False), ("hidden", True)],
)
def test_an_article_with_nothing_related_to_look_up_is_one_call(
    ask: Any, name: str, admin: bool
) -> None:
    """No related stories, not found, or unpublished (for all but the admin):
    the second find is never made."""
    answers = alike(ask, MOBILE, {"id": IDS[name]}, admin=admin)
    _, calls, jobs = answers["chained"]
    if (name, admin) == ("hidden", True):  # its story's article is looked up
        assert calls == 2 and jobs == 1 and answers["unchained"][2] == 2
    else:
        assert calls == 1 and jobs == 1


@pytest.mark.parametrize("query", [FIRST_ONE, FILTERED])
def test_related_narrowed_by_its_arguments_is_chained_alike(ask: Any, query: str) -> None:
    answers = alike(ask, query, {"id": IDS["root"]})
    body, calls, jobs = answers["chained"]
    assert calls == 2 and jobs == 1 and answers["unchained"][2] == 2
    assert body.count(b'"title":"story') == (1 if query is FIRST_ONE else 2)


@pytest.mark.parametrize("which", [1, 2])
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (pymongo.errors.AutoReconnect("connection reset"), b"STORE_UNAVAILABLE"),
        (pymongo.errors.ExecutionTimeout("operation exceeded time limit"), b"TIMEOUT"),
        (pymongo.errors.OperationFailure("a driver bug"), None),
    ],
    ids=["outage", "timeout", "bug"],
)
def test_either_find_failing_is_answered_alike(
    ask: Any, which: int, error: Exception, code: bytes | None
) -> None:
    """A failed store call is reported at the root field that made it (as a
    plan reports it, chained or not); a failure that is no outage nor timeout
    makes the plan fall back, and ordinary execution asks again what failed
    (here answered): three calls either way."""
    answers = alike(
        ask,
        MOBILE,
        {"id": IDS["root"]},
        ("chained", "unchained"),
        gateway=lambda g: Failing(g, which, error),
    )
    body, calls, jobs = answers["chained"]
    if code is None:
        assert b'"errors"' not in body and calls == 3
        return
    assert code in body and b'"path":["article"]' in body
    assert calls == which and jobs == 1
    assert answers["unchained"][2] == which


def test_a_related_url_that_is_not_text_fails_the_plan_alike(ask: Any) -> None:
    """``article_id`` raises in the worker (in ``then``): the plan falls back
    with the first find recorded, as when the loop made the second itself."""
    answers = alike(ask, MOBILE, {"id": IDS["odd"]})
    body, calls, _ = answers["chained"]
    assert calls == 1 and b'"article":{"title":"article odd"' in body


def test_a_plan_falling_back_after_a_chain_asks_the_store_nothing_more(ask: Any) -> None:
    """A stored value the plan cannot write (a ``related`` that is not a list)
    makes it fall back after both finds: ordinary execution answers from the
    record of both, chained or not, and asks the store nothing more."""
    answers = alike(ask, MOBILE, {"id": IDS["cites"]})
    body, calls, jobs = answers["chained"]
    assert calls == 2 and jobs == 1 and answers["unchained"][2] == 2
    assert b'"errors"' in body


SHAPES = {
    "mobile": ("query($id: ID!) { article(id: $id) { title related { article { id } } } }", True),
    "narrowed": ('{ article(id: "a") { related(first: 2) { article { id } } } }', True),
    "two lookups below related": (
        '{ article(id: "a") { related { article { id } other: article { title } } } }',
        False,
    ),
    "three levels": (
        '{ article(id: "a") { related { article { related { article { id } } } } } }',
        False,
    ),
    "a page of articles": (
        "{ articles(first: 2) { nodes { related { article { id } } } } }",
        False,
    ),
    "nothing to look up below": ('{ article(id: "a") { title related { title } } }', False),
    "a subscription": (
        "subscription { articlePublished { title related { article { id } } } }",
        False,
    ),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_only_an_article_with_one_related_lookup_below_chains(name: str) -> None:
    from graphql import OperationDefinitionNode, parse
    from graphql.execution.values import get_variable_values

    from api.execution.plan import build_plan
    from api.operation.schema import build_schema

    schema = build_schema()
    query, chains = SHAPES[name]
    document = parse(query)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    variables = get_variable_values(
        schema._schema, operation.variable_definitions or (), {"id": "a"}
    )
    assert not isinstance(variables, list)
    plan = build_plan(schema, document, operation, variables)
    chained = [f for f in plan.walk() if f.chain is not None]
    if chains:
        (f,) = chained
        related, below = f.chain  # type: ignore[misc]
        assert (f.name, related.name, below.name) == ("article", "related", "article")
    else:
        assert chained == []


def test_ordinary_execution_never_chains(ask: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def chain(self: Gateway, c: Any) -> None:
        raise AssertionError("ordinary execution asked for a chain")

    monkeypatch.setattr(Gateway, "chain", chain)
    body, calls, jobs = ask("ordinary", MOBILE, {"id": IDS["root"]})
    assert b'"errors"' not in body and calls == 2 and jobs == 2


def test_a_heavy_operation_never_chains(ask: Any) -> None:
    """Its calls take the heavy lane one at a time (``api.data.slots``)."""
    answers = alike(ask, MOBILE, {"id": IDS["root"]}, heavy_query_points=1)
    _, calls, jobs = answers["chained"]
    assert calls == 2 and jobs == 2
