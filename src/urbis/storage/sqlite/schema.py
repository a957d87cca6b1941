"""SQLite schema of the embedded store, applied by versioned migrations."""

from __future__ import annotations

import sqlite3

# Each entry is one migration; the list index + 1 is the schema version. Never edit a
# released migration: append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE tenants (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE entities (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        types TEXT NOT NULL,          -- JSON array of expanded type IRIs
        scopes TEXT,                  -- JSON array of scopes, or NULL
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        attrs TEXT NOT NULL,          -- JSON object: attribute IRI -> [instance, ...]
        UNIQUE (tenant, id)
    );
    CREATE TABLE entity_types (
        tenant TEXT NOT NULL,
        type TEXT NOT NULL,
        pk INTEGER NOT NULL,
        PRIMARY KEY (tenant, type, pk)
    ) WITHOUT ROWID;
    CREATE INDEX entity_types_pk ON entity_types (pk);
    CREATE TABLE geo (
        gid INTEGER PRIMARY KEY,
        pk INTEGER NOT NULL,          -- entities.pk
        attr TEXT NOT NULL,           -- GeoProperty IRI
        geojson TEXT NOT NULL         -- the GeoJSON geometry
    );
    CREATE INDEX geo_pk ON geo (pk);
    CREATE VIRTUAL TABLE geo_rtree USING rtree (gid, min_x, max_x, min_y, max_y);
    CREATE TABLE jsonld_contexts (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        hits INTEGER NOT NULL DEFAULT 0
    );
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema version; returns that version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for index in range(version, len(MIGRATIONS)):
        conn.executescript(
            f"BEGIN;\n{MIGRATIONS[index]}\nPRAGMA user_version = {index + 1};\nCOMMIT;")
    return len(MIGRATIONS)
