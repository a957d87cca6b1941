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
    # temporal: entity histories (the temporal API). One row per entity ever recorded
    # (`deleted_at` once deleted), one per instance series (attribute + datasetId, '' for the
    # default instance) and one per attribute instance. Times are integer microseconds since
    # the epoch; `observed_at` is the instance's observedAt, or when it was recorded;
    # `created_at` is when it was recorded, `modified_at` when it was last changed; `num` is a
    # numeric Property value (aggregations run on the index); `deleted_at` marks the record
    # of a deletion; `body` is the instance JSON without its system timestamps.
    # `temporal_rollups` sums each series' instances per hour of observed_at, so aggregations
    # over whole hours read one row per series and hour instead of every instance.
    """
    CREATE TABLE temporal_entities (
        tpk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        types TEXT NOT NULL,
        scopes TEXT,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        deleted_at TEXT,
        UNIQUE (tenant, id)
    );
    CREATE TABLE temporal_series (
        sid INTEGER PRIMARY KEY,
        tpk INTEGER NOT NULL REFERENCES temporal_entities (tpk) ON DELETE CASCADE,
        attr TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        UNIQUE (tpk, attr, dataset_id)
    );
    CREATE TABLE temporal_instances (
        ipk INTEGER PRIMARY KEY,
        sid INTEGER NOT NULL REFERENCES temporal_series (sid) ON DELETE CASCADE,
        observed_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        modified_at INTEGER NOT NULL,
        num REAL,
        deleted_at INTEGER,
        body TEXT NOT NULL
    );
    CREATE INDEX temporal_instances_observed
        ON temporal_instances (sid, observed_at, num, deleted_at);
    CREATE TABLE temporal_rollups (
        sid INTEGER NOT NULL REFERENCES temporal_series (sid) ON DELETE CASCADE,
        slot INTEGER NOT NULL,        -- hour of observed_at since the epoch
        n_total INTEGER NOT NULL,     -- instances (not deletions)
        n_num INTEGER NOT NULL,       -- numeric ones: their sum, sum of squares, min, max
        s1 REAL,
        s2 REAL,
        lo REAL,
        hi REAL,
        first_at INTEGER NOT NULL,    -- earliest and latest observed_at
        last_at INTEGER NOT NULL,
        PRIMARY KEY (sid, slot)
    ) WITHOUT ROWID;
    """,
    # notification outbox: each write batch's changes (`changes`, JSON) recorded in its own
    # transaction, claimed by a notifier under a lease; notifications to send again; the next
    # run of each periodic subscription.
    """
    CREATE TABLE notify_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: claims go by "seq > last"
        tenant TEXT NOT NULL,
        changes BLOB NOT NULL,
        created REAL NOT NULL,        -- epoch seconds of the write
        lease_until REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE notify_retries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        subscription_id TEXT NOT NULL,
        body BLOB NOT NULL,           -- the Notification (JSON)
        attempts INTEGER NOT NULL,
        next_at REAL NOT NULL,        -- epoch seconds; pushed ahead while claimed
        error TEXT
    );
    CREATE INDEX notify_retries_due ON notify_retries (next_at);
    ALTER TABLE subscriptions ADD COLUMN periodic_next REAL;
    """,
    # API keys: the SHA-256 of each key, never the key; `grants` holds tenants / types /
    # entities / department as JSON.
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        roles TEXT NOT NULL,          -- JSON array of role names
        key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        grants TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    # audit log (urbis.context.audit): records are inserted unsealed (hash NULL); the sealer
    # gives them chain_pos and hash. `audit_chain` (one row) holds the head of the chain and
    # its anchor, the last record purged by retention. Triggers keep sealed records as they
    # are and let only records behind the anchor be deleted.
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        tenant TEXT NOT NULL,
        principal TEXT NOT NULL,
        roles TEXT NOT NULL,          -- JSON array
        client TEXT,
        request_id TEXT,
        operation TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT,
        entity_ids TEXT NOT NULL,     -- JSON array (at most MAX_IDS of entity_count)
        entity_count INTEGER NOT NULL,
        attributes TEXT NOT NULL,     -- JSON array
        chain_pos INTEGER,
        hash TEXT
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    CREATE UNIQUE INDEX audit_log_chain ON audit_log (chain_pos) WHERE chain_pos IS NOT NULL;
    CREATE INDEX audit_log_unsealed ON audit_log (seq) WHERE hash IS NULL;
    CREATE TABLE audit_chain (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        anchor_pos INTEGER NOT NULL,
        anchor_hash TEXT NOT NULL,
        anchor_at TEXT,
        head_pos INTEGER NOT NULL,
        head_hash TEXT NOT NULL
    );
    INSERT INTO audit_chain VALUES (1, 0, '', NULL, 0, '');
    CREATE TRIGGER audit_log_sealed BEFORE UPDATE ON audit_log WHEN OLD.hash IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_purge BEFORE DELETE ON audit_log
    WHEN OLD.chain_pos IS NULL OR OLD.chain_pos > (SELECT anchor_pos FROM audit_chain)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # Entity changes waiting to be written into histories: the entity store's journal adds
    # one row per write batch (its changes, as urbis.context.changes encodes them) in the
    # batch's transaction; the temporal store turns them into instances in bulk, later or
    # before anything reads or changes a history (urbis.storage.sqlite.temporal).
    """
    CREATE TABLE temporal_pending (
        seq INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        at INTEGER NOT NULL,          -- when the change was journaled (µs since the epoch)
        size INTEGER NOT NULL,        -- how many entity changes
        changes BLOB NOT NULL
    );
    """,
    # IoT agents (urbis.storage.devices_base): service groups unique by (apikey, resource),
    # devices by (tenant, device_id) and (apikey, device_id); `body` is the provisioned JSON.
    # The dead-letter log is trimmed to its newest rows on every append.
    """
    CREATE TABLE iot_groups (
        apikey TEXT NOT NULL,
        resource TEXT NOT NULL,
        tenant TEXT NOT NULL,
        service_path TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (apikey, resource)
    );
    CREATE INDEX iot_groups_scope ON iot_groups (tenant, service_path);
    CREATE TABLE iot_devices (
        tenant TEXT NOT NULL,
        device_id TEXT NOT NULL,
        service_path TEXT NOT NULL,
        apikey TEXT NOT NULL,
        entity_name TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen TEXT,
        PRIMARY KEY (tenant, device_id)
    );
    CREATE UNIQUE INDEX iot_devices_key ON iot_devices (apikey, device_id) WHERE apikey <> '';
    CREATE INDEX iot_devices_scope ON iot_devices (tenant, service_path, device_id);
    CREATE TABLE iot_dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        tenant TEXT,
        apikey TEXT NOT NULL,
        device_id TEXT NOT NULL,
        transport TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    """,
    # context source registrations (urbis.storage.registrations_base): `body` is the expanded
    # document (urbis.context.registration), `mode` the effective mode, `ops` the bit mask of
    # the supported operations (urbis.context.registration_ops). The index tables map each
    # information item to its (type, entity id) pairs and attributes, '' meaning any (so that
    # a look-up is `type IN ('', ...)`, index equality only);
    # `registration_changes` records every write for the subscriptions to registrations.
    # `csource_subscriptions` and its index tables have the shape of `subscriptions`.
    """
    CREATE TABLE registrations (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        mode TEXT NOT NULL,
        ops INTEGER NOT NULL,
        expires_key TEXT,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        times_sent INTEGER NOT NULL DEFAULT 0,
        times_failed INTEGER NOT NULL DEFAULT 0,
        last_success TEXT,
        last_failure TEXT,
        status TEXT,
        UNIQUE (tenant, id)
    );
    CREATE INDEX registrations_mode ON registrations (tenant, mode);
    CREATE TABLE registration_entities (
        pk INTEGER NOT NULL REFERENCES registrations (pk) ON DELETE CASCADE,
        tenant TEXT NOT NULL,
        info INTEGER NOT NULL,
        type TEXT NOT NULL,
        entity_id TEXT NOT NULL
    );
    CREATE INDEX registration_entities_type ON registration_entities (tenant, type, entity_id);
    CREATE INDEX registration_entities_id ON registration_entities (tenant, entity_id);
    CREATE INDEX registration_entities_pk ON registration_entities (pk);
    CREATE TABLE registration_attrs (
        pk INTEGER NOT NULL REFERENCES registrations (pk) ON DELETE CASCADE,
        info INTEGER NOT NULL,
        attr TEXT NOT NULL
    );
    CREATE INDEX registration_attrs_pk ON registration_attrs (pk, info, attr);
    CREATE TABLE registration_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        before TEXT,
        after TEXT,
        created REAL NOT NULL
    );
    CREATE TABLE csource_subscriptions (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        is_active INTEGER NOT NULL,
        expires_key TEXT,
        time_interval REAL,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        times_sent INTEGER NOT NULL DEFAULT 0,
        times_failed INTEGER NOT NULL DEFAULT 0,
        last_notification TEXT,
        last_success TEXT,
        last_failure TEXT,
        last_status TEXT,
        UNIQUE (tenant, id)
    );
    CREATE INDEX csource_subscriptions_active ON csource_subscriptions (is_active, expires_key);
    CREATE TABLE csource_subscription_types (
        pk INTEGER NOT NULL REFERENCES csource_subscriptions (pk) ON DELETE CASCADE,
        tenant TEXT NOT NULL,
        type TEXT
    );
    CREATE INDEX csource_subscription_types_lookup ON csource_subscription_types (tenant, type);
    CREATE INDEX csource_subscription_types_pk ON csource_subscription_types (pk);
    CREATE TABLE csource_subscription_attrs (
        pk INTEGER NOT NULL REFERENCES csource_subscriptions (pk) ON DELETE CASCADE,
        tenant TEXT NOT NULL,
        attr TEXT
    );
    CREATE INDEX csource_subscription_attrs_lookup ON csource_subscription_attrs (tenant, attr);
    CREATE INDEX csource_subscription_attrs_pk ON csource_subscription_attrs (pk);
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
