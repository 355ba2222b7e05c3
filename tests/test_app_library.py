"""The scenario library: SQLite transactions, save/load/delete in the app, export, upload."""
from __future__ import annotations

import sys
from pathlib import Path as _P

sys.path.insert(0, str(_P(__file__).resolve().parent.parent))  # lxapp/ beside app.py

import threading
import tomllib
from pathlib import Path

import pytest

from lxapp.library import Library, to_toml

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
DEMO = str(ROOT / "lxapp" / "demo" / "demo_model.toml")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("LXSD_DB", str(tmp_path / "workshop.sqlite"))
    monkeypatch.setenv("LXSD_MODEL", DEMO)


def test_save_list_get_delete(tmp_path):
    lib = Library(tmp_path / "a.sqlite")
    sid = lib.save("快速融岳", {"rongyue_pace": 2.0}, {"rongyue_pace": 2.0}, "plan", "王", "note")
    rows = lib.list()
    assert [r["name"] for r in rows] == ["快速融岳"] and rows[0]["author"] == "王"
    assert lib.get(sid)["levers"] == {"rongyue_pace": 2.0}
    assert lib.delete(sid) and lib.list() == [] and not lib.delete(sid)
    with pytest.raises(ValueError):
        lib.save("  ", {}, {})


def test_concurrent_saves_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    Library(path)
    errors = []

    def worker(i):
        try:
            lib = Library(path)
            for j in range(10):
                lib.save(f"s{i}-{j}", {"x": i}, {"x": j}, author=f"p{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    names = {r["name"] for r in Library(path).list()}
    assert len(names) == 80


def test_export_is_a_valid_scenario_file():
    from engine import load_model
    from engine.scenarios import scenario_from_dict

    model = load_model(DEMO)
    entry = {"name": "Workshop A", "author": "Li", "note": "n", "overrides": {"rongyue_pace": 2.0}}
    data = tomllib.loads(to_toml(entry, model.model.variables))
    sc = scenario_from_dict(data, model, "x.toml")
    assert sc.overrides == {"rongyue_pace": 2.0} and sc.author == "Li"


def test_save_load_delete_in_the_app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "levers"
    at.query_params["lang"] = "en"
    at.run()
    assert not at.exception
    at.slider(key="lv_rongyue_pace_en").set_value(2.0).run()
    at.sidebar.radio(key="w_page_en").set_value("library").run()
    at.text_input(key="save_name").input("Fast integration")
    at.text_input(key="save_author").input("Zhang")
    at.text_area(key="save_note").input("workshop 1")
    at.button[0].click().run()       # the form's submit button
    assert not at.exception
    assert any("Fast integration" in s.value for s in at.success)
    rows = Library().list()
    assert len(rows) == 1 and rows[0]["levers"] == {"rongyue_pace": 2.0} and rows[0]["author"] == "Zhang"
    sid = rows[0]["id"]
    # move the lever away, then load the saved scenario back into the levers
    at.session_state["lv"] = {"rongyue_pace": 0.5}
    at.button(key=f"lib_load_{sid}").click().run()
    assert not at.exception
    assert at.session_state["lv"] == {"rongyue_pace": 2.0}
    # add it to the comparison
    at.button(key=f"lib_add_{sid}").click().run()
    assert f"lib:{sid}" in at.sidebar.multiselect(key="w_sc_en").value
    # delete: asks first, then deletes; undo brings it back
    at.button(key=f"lib_del_{sid}").click().run()
    assert Library().list() != [] and not at.exception
    at.button(key=f"lib_del_ok_{sid}").click().run()
    assert not at.exception
    assert Library().list() == [] and [r["id"] for r in Library().list(deleted=True)] == [sid]
    assert f"lib:{sid}" not in at.sidebar.multiselect(key="w_sc_en").value
    at.button(key="lib_undo").click().run()
    assert [r["id"] for r in Library().list()] == [sid]
    # delete again, restore from the list of deleted ones
    at.button(key=f"lib_del_{sid}").click().run()
    at.button(key=f"lib_del_ok_{sid}").click().run()
    at.button(key=f"lib_restore_{sid}").click().run()
    assert [r["id"] for r in Library().list()] == [sid] and not at.exception


def test_names_are_limited(tmp_path):
    lib = Library(tmp_path / "n.sqlite")
    lib.save("x" * 80, {}, {})
    with pytest.raises(ValueError, match="80 characters"):
        lib.save("x" * 2400, {}, {})


def test_locked_library_is_a_message(tmp_path):
    import sqlite3

    from lxapp.library import LibraryError
    path = tmp_path / "l.sqlite"
    Library(path).save("a", {}, {})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(LibraryError, match="busy .* more than"):
            Library(path, timeout=0.2).save("b", {}, {})
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_damaged_rows_and_files(tmp_path):
    import sqlite3

    from lxapp.library import LibraryError
    path = tmp_path / "d.sqlite"
    lib = Library(path)
    good = lib.save("good", {"a": 1}, {"a": 1})
    bad = lib.save("bad", {}, {})
    con = sqlite3.connect(path)
    con.execute("UPDATE scenario SET overrides = '{not json' WHERE id = ?", (bad,))
    con.commit()
    con.close()
    assert [r["id"] for r in lib.list()] == [good] and lib.damaged == [bad]
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LibraryError, match="damaged"):
        Library(junk)


def _locked_script(db: str):
    import streamlit as st

    from lxapp import core, libpage, ui
    from lxapp.library import Library
    libpage._library = lambda: Library(db, timeout=0.2)
    bundle = ui.get_bundle(core.bundle_key())
    ctx = ui.Ctx(bundle, "en", "library", [core.CURRENT], core.CURRENT, "plan", {}, False)
    libpage.render(ctx)
    st.write("still running")


def test_locked_library_in_the_app(tmp_path):
    import sqlite3

    from streamlit.testing.v1 import AppTest
    path = tmp_path / "l.sqlite"
    Library(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        at = AppTest.from_function(_locked_script, args=(str(path),), default_timeout=60).run()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and "busy" in at.error[0].value


def _upload_script(data: bytes, filename: str):
    import streamlit as st

    from lxapp import core, libpage, ui
    bundle = ui.get_bundle(core.bundle_key())
    ctx = ui.Ctx(bundle, "en", "library", [core.CURRENT], core.CURRENT, "plan", {}, False)
    key = libpage.handle_upload(ctx, filename, data)
    st.write(f"key={key}")


@pytest.mark.parametrize("content,needle", [
    (b"[scenario]\nlabel_en = 'x'\n[set]\nno_such_constant = 1\n", "no_such_constant"),
    (b"[set]\nrongyue_pace = 99\n", "outside the range"),
    (b"[set]\nrongyue_pace = 'fast'\n", "not a number"),
    (b"this is not toml [[[", "TOML"),
    (b"\xff\xfe\x00bad", "UTF-8"),
    (b"[set]\n" + b"".join(b"k%d = 1\n" % i for i in range(300_000)), "bytes; the limit"),   # 4 MB
    (b"[scenario]\nlabel_en = 'x'\n[set]\nrongyue_pace = [" + b"1," * 3000 + b"1]\n", "more than 2,000 keys"),
    (b"[scenario]\nbase = '/etc/passwd'\n[set]\nrongyue_pace = 2\n", "must name one of the app's scenarios"),
    (b"[scenario]\nbase = '../model/linxiang'\n[set]\nrongyue_pace = 2\n", "must name one of the app's scenarios"),
])
def test_bad_upload_shows_an_error(content, needle):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_upload_script, args=(content, "bad.toml"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and needle in at.error[0].value
    assert "key=None" in at.markdown[-1].value


def test_good_upload_is_added():
    from streamlit.testing.v1 import AppTest

    good = b"[scenario]\nlabel_en = 'Mine'\nlabel_zh = '\xe6\x88\x91\xe7\x9a\x84'\n[set]\nrongyue_pace = 2.0\n"
    at = AppTest.from_function(_upload_script, args=(good, "mine.toml"), default_timeout=60).run()
    assert not at.exception
    assert "upload:mine" in at.session_state["extra"]


def test_upload_with_a_known_base_is_accepted():
    from streamlit.testing.v1 import AppTest

    good = b"[scenario]\nlabel_en = 'On plan'\nbase = 'plan'\n[set]\nrongyue_pace = 2.0\n"
    at = AppTest.from_function(_upload_script, args=(good, "onplan.toml"), default_timeout=60).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "upload:onplan" in at.session_state["extra"]
