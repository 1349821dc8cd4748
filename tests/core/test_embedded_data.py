"""Where the embedded engine keeps its data, and that it is there again after
the process (here: the client) that wrote it is gone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

from core import embedded
from core.config import Settings
from core.engine import Client
from core.indexes import INDEXES
from core.store import connect


def test_the_data_folder_is_the_setting_else_the_users_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert embedded.data_dir(Settings()) == str(tmp_path / "xdg" / "newsgraph")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert embedded.data_dir(Settings()) == str(tmp_path / "home/.local/share/newsgraph")
    assert embedded.data_dir(Settings(data_dir=str(tmp_path / "d"))) == str(tmp_path / "d")
    throwaway = embedded.data_dir(Settings(memory=True, data_dir=str(tmp_path / "d")))
    assert "newsgraph-memory-" in throwaway and not throwaway.startswith(str(tmp_path))


def test_what_one_client_wrote_the_next_reads(tmp_path: Path) -> None:
    first = Client(str(tmp_path))
    articles = first["news"]["articles"]
    articles.create_indexes(INDEXES["articles"])
    articles.insert_many([{"_id": f"a{i}", "webUrl": f"u{i}", "published": True} for i in range(5)])
    first.close()
    again = Client(str(tmp_path), strict=True)["news"]["articles"]
    assert set(again.index_information()) == {
        "_id_",
        *(m.document["name"] for m in INDEXES["articles"]),
    }
    assert [d["_id"] for d in again.find({"published": True}).sort("_id", -1).limit(2)] == [
        "a4",
        "a3",
    ]


def test_a_store_says_where_its_file_is(tmp_path: Path) -> None:
    store = connect(Settings(data_dir=str(tmp_path), db_name="here"))
    store.ping()
    assert store.where == f"embedded ({tmp_path / 'here.sqlite3'})"
    assert (tmp_path / "here.sqlite3").exists()


def test_a_file_of_another_layout_is_refused_not_misread(tmp_path: Path) -> None:
    Client(str(tmp_path))["old"].command("ping")
    with sqlite3.connect(tmp_path / "old.sqlite3") as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(OperationFailure, match="layout 99 of the embedded engine"):
        Client(str(tmp_path))["old"].command("ping")
