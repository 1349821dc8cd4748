"""testing.live: a server started for the tests keeps serving however much it
logs, and a failure while it serves shows the end of its log."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import httpx2 as httpx
import pytest

from testing.live import serving


@pytest.fixture
def chatty(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "chatty.py").write_text(
        textwrap.dedent(
            """
            import http.server
            import sys

            for _ in range(512):  # 512 KiB: eight times what a pipe holds
                sys.stderr.write("x" * 1023 + "\\n")
            sys.stderr.write("chatty is serving\\n")
            sys.stderr.flush()
            port = int(sys.argv[sys.argv.index("--port") + 1])
            handler = http.server.SimpleHTTPRequestHandler
            http.server.HTTPServer(("127.0.0.1", port), handler).serve_forever()
            """
        )
    )
    return {"PYTHONPATH": str(tmp_path)}


def test_a_server_that_logs_more_than_a_pipe_holds_still_serves(chatty):
    with serving(["chatty"], chatty, timeout=10) as (url, _pid):
        assert httpx.get(url, timeout=5).status_code == 200


def test_a_failure_while_serving_prints_the_end_of_the_servers_log(
    chatty, capsys, monkeypatch, tmp_path
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "logs"))  # the kept log goes there
    (tmp_path / "logs").mkdir()
    with pytest.raises(AssertionError), serving(["chatty"], chatty, timeout=10):
        raise AssertionError("the test failed")
    assert "chatty is serving" in capsys.readouterr().err
    (kept,) = (tmp_path / "logs").iterdir()
    assert "chatty is serving" in kept.read_text()


def test_a_clean_exit_deletes_the_log(chatty, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir()
    with serving(["chatty"], chatty, timeout=10):
        assert len(list((tmp_path / "logs").iterdir())) == 1
    assert list((tmp_path / "logs").iterdir()) == []
