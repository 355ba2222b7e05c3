"""The workshop's scenario library: saved lever settings in an embedded SQLite database.

Path from the environment variable LXSD_DB (default data/workshop.sqlite). Every write is one
transaction (BEGIN IMMEDIATE, with a busy timeout), so people saving at the same moment each
get their own row and nothing is lost.
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
    created REAL NOT NULL
)"""


def db_path() -> Path:
    return Path(os.environ.get("LXSD_DB") or ROOT / "data" / "workshop.sqlite")


class Library:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            con.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.execute("PRAGMA busy_timeout = 30000")
        con.row_factory = sqlite3.Row
        return con

    @contextmanager
    def _tx(self):
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

    def save(self, name: str, levers: dict, overrides: dict, base: str | None = None,
             author: str = "", note: str = "") -> int:
        name = (name or "").strip()
        if not name:
            raise ValueError("a saved scenario needs a name")
        with self._tx() as con:
            cur = con.execute(
                "INSERT INTO scenario (name, author, note, base, levers, overrides, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, author.strip(), note.strip(), base, json.dumps(levers, sort_keys=True),
                 json.dumps(overrides, sort_keys=True), time.time()))
            return int(cur.lastrowid)

    def list(self) -> list[dict]:
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM scenario ORDER BY created DESC, id DESC").fetchall()
        finally:
            con.close()
        return [self._row(r) for r in rows]

    def get(self, sid: int) -> dict | None:
        con = self._connect()
        try:
            r = con.execute("SELECT * FROM scenario WHERE id = ?", (int(sid),)).fetchone()
        finally:
            con.close()
        return self._row(r) if r else None

    def delete(self, sid: int) -> bool:
        with self._tx() as con:
            return con.execute("DELETE FROM scenario WHERE id = ?", (int(sid),)).rowcount > 0

    @staticmethod
    def _row(r: sqlite3.Row) -> dict:
        d = dict(r)
        d["levers"] = json.loads(d["levers"])
        d["overrides"] = json.loads(d["overrides"])
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
