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
    chip BLOB,
    UNIQUE (person_id, source_sha256));
CREATE TABLE IF NOT EXISTS unknowns (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    track TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    quality REAL NOT NULL,
    vector BLOB NOT NULL,
    chip BLOB NOT NULL);
"""


class SqliteStore(Store):
    schema = _SCHEMA
    begin = "BEGIN IMMEDIATE"  # take the write lock now: concurrent writers wait, none is lost
    errors = (sqlite3.Error,)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        super().__init__(str(self.path))
        if self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder; expected a gallery file (e.g. {self.path / 'people.db'}) "
                               "or a postgresql:// URL")
        self.faiss_path = self.path.with_name(self.path.name + ".faiss")
        self.matrix_cache = self.path.with_name(self.path.name + ".matrix.npz")

    def _new_connection(self):
        if not self.path.parent.is_dir():
            raise GalleryError(f"{self.path}: cannot create the gallery there (folder {self.path.parent} does not exist)")
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def exists(self) -> bool:
        return self.path.exists()

    def refuse_foreign(self) -> None:
        """An existing file that is not a facestyle gallery is refused before any connection that could change it
        (opening one read-write would already switch its journal to WAL). An empty file, or a database without
        tables (one another process is creating the gallery in: its tables appear at its commit), is a new gallery."""
        if self.path.is_file() and self.path.stat().st_size == 0:
            return
        if not self._tables(self.path):
            return
        meta = self.read_meta(self.path)
        if "model" not in meta or "schema_version" not in meta:
            raise GalleryError(f"{self.path}: not a facestyle gallery (its meta table has no model); left unchanged")

    def _prepare_for_writing(self, db) -> None:
        db.execute("PRAGMA journal_mode = WAL")  # persistent in the file; readers never switch it

    def _has_chip_column(self, db) -> bool:
        return any(row[1] == "chip" for row in db.execute("PRAGMA table_info(embeddings)").fetchall())

    def _has_table(self, db, table: str) -> bool:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None

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
    def _tables(path: Path) -> set[str]:
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            raise GalleryError(f"{path}: not a facestyle gallery, or corrupted ({exc}); left unchanged") from None

    @staticmethod
    def read_meta(path: str | Path) -> dict:
        """The meta table, read without changing the file (refused with one line when it is not a gallery)."""
        path = Path(path)
        if path.is_dir():
            raise GalleryError(f"{path}: is a folder; expected a gallery file or a postgresql:// URL")
        if not path.exists():
            raise GalleryError(f"{path}: no such gallery; enrol someone to create it")
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "meta" not in tables:
                    raise GalleryError(f"{path}: not a facestyle gallery (a SQLite database without facestyle's tables); "
                                       "left unchanged")
                return dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise GalleryError(f"{path}: not a facestyle gallery, or corrupted ({exc}); left unchanged") from None
