"""The embedded store: one SQLite file (WAL journal), safe for many processes on one host."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from ...errors import GalleryError
from .store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_file TEXT,
    box TEXT,
    created REAL NOT NULL,
    UNIQUE (person_id, source_sha256));
"""


class SqliteStore(Store):
    schema = _SCHEMA
    begin = "BEGIN IMMEDIATE"  # take the write lock now: concurrent writers wait, none is lost
    errors = (sqlite3.Error,)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        super().__init__(str(self.path))
        self.faiss_path = self.path.with_name(self.path.name + ".faiss")
        self.matrix_cache = self.path.with_name(self.path.name + ".matrix.npz")

    def _new_connection(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def exists(self) -> bool:
        return self.path.exists()

    def _integrity_check(self, db) -> None:
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise GalleryError(f"{self.path}: integrity check failed ({check})")

    def backup(self) -> str:
        """Copy the gallery to ``<name>.bak`` (SQLite's online backup: consistent while others write)."""
        target = self.path.with_name(self.path.name + ".bak")
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        with closing(sqlite3.connect(tmp)) as out:
            self.connect().backup(out)
        tmp.replace(target)
        return str(target)

    @staticmethod
    def read_meta(path: str | Path) -> dict:
        try:
            with closing(sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)) as db:
                return dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise GalleryError(f"{path}: not a facestyle gallery, or corrupted ({exc})") from None
