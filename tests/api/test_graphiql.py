"""GraphiQL served by newsgraph itself: the assets, the CDN fallback, and the
explorer in a real headless browser with every non-loopback request blocked."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx2 as httpx
from graphql import parse, print_ast
from starlette.testclient import TestClient

from api.app import create_app
from api.execution.incremental import without_incremental
from api.http.explorer import ASSETS
from testing.live import running_server
from tests.api.browser import LAUNCH_ARGS, chromium_path, require_local_graphiql
from tests.api.fixtures import without_budget
from tests.api.wsclient import metric
from tests.articles import EXAMPLES, web_url, write_article
from tests.test_readme import blocks

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response, Route

HTML = {"Accept": "text/html"}


def test_the_page_and_its_assets_are_served_locally(client):
    require_local_graphiql()
    page = client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "unpkg.com" not in page.text and "jsdelivr" not in page.text
    for name in ASSETS:
        assert f'src="graphiql/{name}"' in page.text or f'href="graphiql/{name}"' in page.text
        asset = client.get(f"/graphiql/{name}")
        assert asset.status_code == 200 and len(asset.content) > 1000
        assert asset.headers["cache-control"].startswith("public")
    assert client.get("/graphiql/../pyproject.toml").status_code == 404
    assert client.get("/graphiql/package.json").status_code == 404  # only the listed files


def test_without_the_assets_the_page_falls_back_to_the_cdn(loaded, api_settings, tmp_path):
    settings = dataclasses.replace(api_settings, graphiql_assets=str(tmp_path))
    with TestClient(create_app(settings, loaded)) as client:
        page = client.get("/graphql", headers=HTML)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        assert re.search(r"https://(unpkg\.com|cdn\.jsdelivr\.net)/", page.text)
        assert client.get("/graphiql/react.js").status_code == 404


def test_switched_off_with_introspection(loaded, api_settings):
    settings = dataclasses.replace(api_settings, introspection=False)
    with TestClient(create_app(settings, loaded)) as client:
        assert client.get("/graphql", headers=HTML).status_code == 404
        assert client.get("/graphiql/react.js").status_code == 404


QUERY = "{ articles(first: 1) { nodes { title provider { name } } } }"


@contextlib.contextmanager
def offline_graphiql(*serve: str) -> Iterator[tuple[str, Page]]:
    """GraphiQL from a live server in headless Chromium, with every request that
    is not to that server aborted: yields the server's URL and the loaded page,
    then asserts the page raised no error and tried to leave loopback for nothing."""
    require_local_graphiql()
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with (
        running_server({"MONGODB_URI": ""}, *(serve or ("--load", str(EXAMPLES)))) as (url, _),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            outside: list[str] = []

            def only_loopback(route: Route) -> None:
                if route.request.url.startswith(url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_loopback)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/graphql", wait_until="networkidle")
            expect(page.locator(".graphiql-container")).to_be_visible(timeout=15_000)
            yield url, page
            assert not errors, errors
            assert not outside, f"the page tried to leave loopback: {outside}"
        finally:
            browser.close()


def editor_text(page: Page, editor: str) -> str:
    """The text of GraphiQL's query editor or response pane (CodeMirror 5)."""
    return str(
        page.evaluate(
            f"document.querySelector('.graphiql-{editor} .CodeMirror').CodeMirror.getValue()"
        )
    )


def test_graphiql_in_headless_chromium_offline():
    from playwright.sync_api import expect

    with offline_graphiql() as (url, page):
        expected = httpx.post(f"{url}/graphql", json={"query": QUERY}).json()
        newest = expected["data"]["articles"]["nodes"][0]

        # The schema loaded: the docs explorer lists the root type's fields
        # and their type, Article.
        page.get_by_role("button", name=re.compile("documentation explorer", re.I)).click()
        page.locator(".graphiql-doc-explorer").get_by_text("Query", exact=True).click()
        explorer = page.locator(".graphiql-doc-explorer")
        expect(explorer.get_by_text("Article", exact=True).first).to_be_visible()

        # Type a query into the editor and run it.
        page.locator(".graphiql-query-editor .CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(QUERY)
        page.keyboard.press("Control+Enter")
        response = page.locator(".graphiql-response .CodeMirror")
        expect(response).to_contain_text(newest["title"], timeout=15_000)
        assert without_budget(json.loads(editor_text(page, "response"))) == without_budget(expected)


def test_the_explorer_plugin_builds_a_query_by_clicking():
    from playwright.sync_api import expect

    with offline_graphiql() as (url, page):
        # An empty editor, so the Explorer starts with nothing selected.
        page.locator(".graphiql-query-editor .CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        assert editor_text(page, "query-editor") == ""

        page.get_by_role("button", name=re.compile("graphiql explorer", re.I)).click()
        fields = page.locator(".graphiql-explorer-root")
        expect(fields.locator("[data-field-name=article]")).to_be_visible()  # the root fields
        # Each click rewrites the editor; the next field only appears once
        # its parent is checked.
        # (`nodes` of Article, not the root field `nodes` of Node.)
        for field in ("articles", "totalCount", "nodes][data-field-type=Article", "title"):
            fields.locator(f"[data-field-name={field}]").click()
        built = editor_text(page, "query-editor")
        assert print_ast(parse(built)) == print_ast(
            parse("query MyQuery { articles { totalCount nodes { title } } }")
        )

        page.get_by_role("button", name=re.compile("execute query", re.I)).click()
        expected = httpx.post(f"{url}/graphql", json={"query": built}).json()
        titles = [node["title"] for node in expected["data"]["articles"]["nodes"]]
        assert "errors" not in expected and titles
        # The pane was empty; CodeMirror renders only the lines in view, so wait
        # for the first title, then compare the whole text.
        expect(page.locator(".graphiql-response .CodeMirror")).to_contain_text(
            titles[0], timeout=15_000
        )
        assert without_budget(json.loads(editor_text(page, "response"))) == without_budget(expected)


#: The README's deferred mobile query: the story first, its related stories later.
DEFERRED = next(query for query in blocks("graphql") if "@defer" in query)


def test_graphiql_shows_a_deferred_query_once_its_parts_have_arrived():
    # GraphiQL's fetcher asks for multipart/mixed and merges the parts as they
    # come; the pane ends up with the whole answer, related stories included.
    from playwright.sync_api import expect

    with offline_graphiql() as (url, page):
        content_types: list[str] = []

        def record(response: Response) -> None:
            if response.request.method == "POST":
                content_types.append(response.headers.get("content-type", ""))

        page.on("response", record)
        undeferred = print_ast(without_incremental(parse(DEFERRED)))
        expected = httpx.post(f"{url}/graphql", json={"query": undeferred}).json()
        related = expected["data"]["article"]["related"]
        assert related, "the story has related stories"

        page.locator(".graphiql-query-editor .CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(DEFERRED)
        page.keyboard.press("Control+Enter")
        pane = page.locator(".graphiql-response .CodeMirror")
        expect(pane).to_contain_text(related[0]["title"], timeout=15_000)
        assert json.loads(editor_text(page, "response"))["data"] == expected["data"]
        # The answer came in parts, not whole: GraphiQL asked for them.
        assert any(t.startswith("multipart/mixed") for t in content_types), content_types


def test_graphiql_subscribes_over_server_sent_events(tmp_path):
    # The explorer has no WebSocket client: its fetcher sends a subscription
    # as an event stream (api/http/sse.py), and the pane shows each article.
    from playwright.sync_api import expect

    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    # --memory: articles of its own, not left in the tests' default database
    # for another test's files of the same URL to meet.
    with offline_graphiql("--memory", "--load", str(tmp_path), "--watch") as (url, page):
        page.locator(".graphiql-query-editor .CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text("subscription { articlePublished { title } }")
        page.keyboard.press("Control+Enter")
        deadline = time.monotonic() + 15
        while metric(url, "newsgraph_subscriptions") < 1:
            assert time.monotonic() < deadline, editor_text(page, "response")
            time.sleep(0.1)
        time.sleep(0.5)  # a poll since
        write_article(tmp_path, "second.md", webUrl=web_url("second"), title='"Seen In GraphiQL"')
        pane = page.locator(".graphiql-response .CodeMirror")
        expect(pane).to_contain_text("Seen In GraphiQL", timeout=15_000)
