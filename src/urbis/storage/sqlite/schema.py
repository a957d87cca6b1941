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
    # 2: subscriptions. `body` is the expanded JSON document (urbis.context.subscription);
    # the delivery counters are columns the notifier updates without rewriting it. The two
    # index tables map (tenant, type IRI) and (tenant, watched attribute IRI) to subscriptions,
    # NULL meaning any type / any attribute, so matching a change is an index look-up.
    """
    CREATE TABLE subscriptions (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        is_active INTEGER NOT NULL,   -- isActive (not paused)
        expires_key TEXT,             -- expiresAt as sortable UTC text, or NULL
        time_interval REAL,           -- periodic subscriptions, or NULL
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        times_sent INTEGER NOT NULL DEFAULT 0,
        times_failed INTEGER NOT NULL DEFAULT 0,
        last_notification TEXT,
        last_success TEXT,
        last_failure TEXT,
        last_status TEXT,             -- 'ok' | 'failed' of the last attempt
        UNIQUE (tenant, id)
    );
    CREATE INDEX subscriptions_active ON subscriptions (is_active, expires_key);
    CREATE TABLE subscription_types (
        pk INTEGER NOT NULL REFERENCES subscriptions (pk) ON DELETE CASCADE,
        tenant TEXT NOT NULL,
        type TEXT                     -- an entity type IRI, NULL for any
    );
    CREATE INDEX subscription_types_lookup ON subscription_types (tenant, type);
    CREATE INDEX subscription_types_pk ON subscription_types (pk);
    CREATE TABLE subscription_attrs (
        pk INTEGER NOT NULL REFERENCES subscriptions (pk) ON DELETE CASCADE,
        tenant TEXT NOT NULL,
        attr TEXT                     -- a watched attribute IRI, NULL for any
    );
    CREATE INDEX subscription_attrs_lookup ON subscription_attrs (tenant, attr);
    CREATE INDEX subscription_attrs_pk ON subscription_attrs (pk);
    """,
]


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema version; returns that version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for index in range(version, len(MIGRATIONS)):
        conn.executescript(
            f"BEGIN;\n{MIGRATIONS[index]}\nPRAGMA user_version = {index + 1};\nCOMMIT;")
    return len(MIGRATIONS)
