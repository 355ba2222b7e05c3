"""The workshop's scenario library: saved lever settings in an embedded SQLite database.

Path from the environment variable LXSD_DB (default data/workshop.sqlite). Every write is one
transaction (BEGIN IMMEDIATE, with a busy timeout), so people saving at the same moment each
get their own row and nothing is lost. A delete only marks the row (``deleted`` = when), so a
deleted scenario can be restored; names are at most 80 characters.

Problems with the database itself (locked by another process for more than 30 s, not a
database, a row whose JSON is damaged) are ``LibraryError`` with one line saying what and what
to do; a damaged row is left out of the list and named in ``Library.damaged``.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from lxapp import ROOT

SCHEMA = """
CREATE TABLE IF NOT EXISTS scenario (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    base TEXT,
    levers TEXT NOT NULL,          -- JSON: lever name -> value
    overrides TEXT NOT NULL,       -- JSON: the full overrides the run uses
    created REAL NOT NULL,
    deleted REAL                   -- when it was deleted (NULL: not deleted); restorable
)"""
MAX_NAME = 80
MAX_AUTHOR = 80
MAX_NOTE = 2000
BUSY_TIMEOUT_S = 30


class LibraryError(RuntimeError):
    """The scenario library cannot be used just now (locked, damaged); the message says why."""


def _explain(exc: sqlite3.Error, path: Path) -> LibraryError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return LibraryError(f"{path.name}: the scenario library has been busy (locked by another process) for more "
                            f"than {BUSY_TIMEOUT_S} s; try again in a moment")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return LibraryError(f"{path.name}: the scenario library file is damaged ({text}); restore it from a copy "
                            f"or point LXSD_DB at a new file")
    return LibraryError(f"{path.name}: the scenario library is not available ({text})")


def db_path() -> Path:
    return Path(os.environ.get("LXSD_DB") or ROOT / "data" / "workshop.sqlite")


class Library:
    def __init__(self, path: str | Path | None = None, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path) if path else db_path()
        self.timeout = timeout
        self.damaged: list[int] = []      # ids of rows left out of the last list() (damaged JSON)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            con.execute(SCHEMA)
            cols = {r[1] for r in con.execute("PRAGMA table_info(scenario)")}
            if "deleted" not in cols:    # a library written before deletes could be undone
                con.execute("ALTER TABLE scenario ADD COLUMN deleted REAL")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        con.row_factory = sqlite3.Row
        return con

    @contextmanager
    def _tx(self):
        try:
            con = self._connect()
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from None
        try:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _explain(exc, self.path) from None
            try:
                yield con
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                con.execute("ROLLBACK")
                raise _explain(exc, self.path) from None
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            con = self._connect()
            try:
                return con.execute(sql, args).fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from None

    def save(self, name: str, levers: dict, overrides: dict, base: str | None = None,
             author: str = "", note: str = "") -> int:
        name = (name or "").strip()
        if not name:
            raise ValueError("a saved scenario needs a name")
        if len(name) > MAX_NAME:
            raise ValueError(f"a name has at most {MAX_NAME} characters, this one {len(name)}")
        if len(author or "") > MAX_AUTHOR or len(note or "") > MAX_NOTE:
            raise ValueError(f"an author has at most {MAX_AUTHOR} characters and a note {MAX_NOTE}")
        with self._tx() as con:
            cur = con.execute(
                "INSERT INTO scenario (name, author, note, base, levers, overrides, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, author.strip(), note.strip(), base, json.dumps(levers, sort_keys=True),
                 json.dumps(overrides, sort_keys=True), time.time()))
            return int(cur.lastrowid)

    def list(self, deleted: bool = False) -> list[dict]:
        """Saved scenarios, newest first (``deleted=True``: the deleted ones, to restore);
        rows whose JSON is damaged are left out and their ids kept in ``self.damaged``."""
        rows = self._read("SELECT * FROM scenario WHERE deleted IS " + ("NOT NULL" if deleted else "NULL")
                          + " ORDER BY created DESC, id DESC")
        out, self.damaged = [], []
        for r in rows:
            d = self._row(r)
            if d is None:
                self.damaged.append(int(r["id"]))
            else:
                out.append(d)
        return out

    def get(self, sid: int) -> dict | None:
        rows = self._read("SELECT * FROM scenario WHERE id = ? AND deleted IS NULL", (int(sid),))
        return self._row(rows[0]) if rows else None

    def delete(self, sid: int) -> bool:
        """Mark as deleted (restorable with :meth:`restore`)."""
        with self._tx() as con:
            return con.execute("UPDATE scenario SET deleted = ? WHERE id = ? AND deleted IS NULL",
                               (time.time(), int(sid))).rowcount > 0

    def restore(self, sid: int) -> bool:
        with self._tx() as con:
            return con.execute("UPDATE scenario SET deleted = NULL WHERE id = ? AND deleted IS NOT NULL",
                               (int(sid),)).rowcount > 0

    @staticmethod
    def _row(r: sqlite3.Row) -> dict | None:
        d = dict(r)
        try:
            d["levers"] = json.loads(d["levers"])
            d["overrides"] = json.loads(d["overrides"])
        except (TypeError, ValueError):
            return None
        if not isinstance(d["levers"], dict) or not isinstance(d["overrides"], dict) \
                or not isinstance(d.get("name"), str):
            return None
        return d


def to_toml(entry: dict, model_variables) -> str:
    """A saved scenario as a scenario file (docs/model-format.md), loadable by `lxsd run`."""
    import tomli_w

    meta = {"name": _stem(entry["name"]), "label_zh": entry["name"], "label_en": entry["name"],
            "doc": entry.get("note") or ""}
    if entry.get("author"):
        meta["author"] = entry["author"]
    sets, series = {}, {}
    for k, v in entry["overrides"].items():
        var = model_variables.get(k)
        if var is not None and var.kind == "data":
            series[k] = v
        else:
            sets[k] = v
    doc = {"scenario": meta, "set": sets}
    if series:
        doc["series"] = series
    return tomli_w.dumps(doc)


def _stem(name: str) -> str:
    import re
    s = re.sub(r"\W+", "_", name, flags=re.ASCII).strip("_").lower()
    return s or "scenario"
