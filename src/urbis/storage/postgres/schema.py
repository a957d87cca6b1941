"""PostgreSQL + PostGIS schema, applied by versioned migrations under an advisory lock.

Tables (every text column that is compared or ordered is `COLLATE "C"`: code point order, as
the pure evaluator and SQLite compare text):

- `urbis_schema_version (version, applied_at)`: one row per applied migration.
- `tenants (name, created_at)`: a tenant exists from its first write. Tenants are a column of
  `entities`, not schemas: one set of tables, indexes and prepared statements serves them all.
- `entities (pk, tenant, id, types text[], scopes text[], created_at, modified_at, attrs jsonb)`:
  `attrs` maps attribute IRI -> list of instances (layout: `urbis.context.model`). jsonb does
  not keep object member order: members come back sorted (shorter keys first).
  Indexes: `UNIQUE (tenant, id)` (look-ups, `ids=`, id order, the lock of a mutation);
  GIN on `types` (type selections: `types && $n` / `types @> $n`); GIN on `scopes` (scopeQ
  without descendants, `scopes && $n`). `attrs` is deliberately not indexed: a PATCH then
  changes no indexed column and PostgreSQL updates the row in place (HOT; fillfactor 80).
- `geo (pk, attr, geom, gc, geog)`: one row per GeoProperty instance (`ON DELETE CASCADE`).
  `geom` is the 2D geometry (SRID 4326) for topological georels, NULL for a
  GeometryCollection, which goes to `gc` instead (GEOS may refuse relations on collections
  whose members overlap; those rows are tested apart). `geog` is the geography used by `near`,
  built from the geometry segmentized to 0.01 degrees, so its great-circle edges follow the
  straight lon/lat edges of RFC 7946 to within 2 cm. Indexes: GiST on `geom`, `gc` (partial)
  and `geog`; btree on `pk` (rewrites and the cascade).
- `jsonld_contexts (id, url, kind, body, ...)`: the ContextStore; `body` is the JSON text as
  given (`text`, so a hosted context is served back unchanged).
- `subscriptions (pk, tenant, id, body jsonb, is_active, expires_key, time_interval, ...,
  times_sent, times_failed, last_notification, last_success, last_failure, last_status)`:
  the SubscriptionStore (migration 2). `body` is the expanded document of
  `urbis.context.subscription`; the delivery counters are columns the notifier updates
  without rewriting it. `expires_key` is expiresAt as sortable UTC text. Indexes:
  `UNIQUE (tenant, id)`; `expires_key` of the active ones (the matcher loads those).
- `subscription_types (pk, tenant, type)`, `subscription_attrs (pk, tenant, attr)`: which
  entity types and watched attributes each subscription is about (NULL: any), btree on
  `(tenant, type|attr)`, so the subscriptions a change may match are an index look-up.
- `registrations`, `registration_entities (pk, tenant, info, type, entity_id)`,
  `registration_attrs (pk, info, attr)`, `registration_changes`: the RegistrationStore
  (`urbis.storage.postgres.registrations`); `csource_subscriptions` and its index tables have
  the shape of `subscriptions` (the subscriptions to registrations).

- `iot_groups`, `iot_devices`, `iot_dead_letters`: the IoT agents' DeviceStore
  (`urbis.storage.devices_base`): groups by (apikey, resource), devices by (tenant, device_id)
  and by (apikey, device_id), the bounded dead-letter log.

Functions: `urbis_datetime_key(text)` and `urbis_time_key(text)` give the sortable UTC forms of
`urbis.context.query.q.datetime_key` and `time_key` (NULL when the text is not one);
`urbis_geo_relation(rel, subject, reference)` runs a georel on a GeometryCollection row (on
its union where GEOS refuses the collection itself); `urbis_expect_rows(actual, expected)`
raises a serialization failure unless they are equal (the conflict check of one-statement
writes).
"""

from __future__ import annotations

import asyncpg

from urbis.storage.postgres.schema_later import IOT, REGISTRATIONS, TEMPORAL_PENDING

# pg_advisory_lock key of migrations: the first bytes of "urbis" read as a number.
LOCK_KEY = 0x7572626973
POSTGIS = "CREATE EXTENSION IF NOT EXISTS postgis"

_DATETIME_KEY = r"""
CREATE FUNCTION urbis_datetime_key(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    m text[];
    ts timestamp;
    shift interval;
BEGIN
    m := regexp_match(s, '^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})'
                         '(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$');
    IF m IS NULL OR m[1]::int < 1 OR m[2]::int NOT BETWEEN 1 AND 12 OR m[3]::int < 1
       OR m[4]::int > 23 OR m[5]::int > 59 OR coalesce(m[6], '0')::int > 59 THEN
        RETURN NULL;
    END IF;
    IF m[3]::int > extract(day FROM make_date(m[1]::int, m[2]::int, 1)
                                     + interval '1 month - 1 day') THEN
        RETURN NULL;
    END IF;
    ts := make_timestamp(m[1]::int, m[2]::int, m[3]::int, m[4]::int, m[5]::int,
                         coalesce(m[6], '0')::int)
          + rpad(left(coalesce(m[7], '0'), 6), 6, '0')::int * interval '1 microsecond';
    IF m[8] IS NOT NULL AND m[8] <> 'Z' THEN
        shift := make_interval(hours => substr(m[8], 2, 2)::int, mins => right(m[8], 2)::int);
        ts := CASE WHEN left(m[8], 1) = '+' THEN ts - shift ELSE ts + shift END;
    END IF;
    IF ts < timestamp '0001-01-01' OR ts >= timestamp '10000-01-01' THEN
        RETURN NULL;
    END IF;
    RETURN to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
END
$fn$;
"""

_TIME_KEY = r"""
CREATE FUNCTION urbis_time_key(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    m text[];
BEGIN
    m := regexp_match(s, '^([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?Z?$');
    IF m IS NULL OR m[1]::int > 23 OR m[2]::int > 59 OR coalesce(m[3], '0')::int > 59 THEN
        RETURN NULL;
    END IF;
    RETURN m[1] || ':' || m[2] || ':' || coalesce(m[3], '00') || '.'
           || rpad(left(coalesce(m[4], '0'), 6), 6, '0');
END
$fn$;
"""

_TABLES = """
CREATE TABLE tenants (
    name text COLLATE "C" PRIMARY KEY,
    created_at text NOT NULL
);
CREATE TABLE entities (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    types text[] COLLATE "C" NOT NULL,
    scopes text[] COLLATE "C",
    created_at text COLLATE "C" NOT NULL,
    modified_at text COLLATE "C" NOT NULL,
    attrs jsonb NOT NULL,
    CONSTRAINT entities_tenant_id UNIQUE (tenant, id)
) WITH (fillfactor = 80);
CREATE INDEX entities_types ON entities USING gin (types);
CREATE INDEX entities_scopes ON entities USING gin (scopes);
CREATE TABLE geo (
    pk bigint NOT NULL REFERENCES entities (pk) ON DELETE CASCADE,
    attr text COLLATE "C" NOT NULL,
    geom geometry(Geometry, 4326),
    gc geometry(GeometryCollection, 4326),
    geog geography(Geometry, 4326) NOT NULL
);
CREATE INDEX geo_pk ON geo (pk);
CREATE INDEX geo_geom ON geo USING gist (geom);
CREATE INDEX geo_gc ON geo USING gist (gc) WHERE gc IS NOT NULL;
CREATE INDEX geo_geog ON geo USING gist (geog);
CREATE TABLE jsonld_contexts (
    id text COLLATE "C" PRIMARY KEY,
    url text COLLATE "C" NOT NULL UNIQUE,
    kind text NOT NULL,
    body text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    last_used_at text,
    hits integer NOT NULL DEFAULT 0
);
CREATE INDEX jsonld_contexts_kind ON jsonld_contexts (kind, created_at, id);
"""

_GEO_RELATION = r"""
CREATE FUNCTION urbis_geo_relation(relation text, subject geometry, reference geometry)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    -- GEOS may refuse a collection whose members overlap: then relate its union (the same
    -- point set), and answer false if even that is refused.
    FOR attempt IN 1..2 LOOP
        BEGIN
            IF attempt = 2 THEN
                subject := ST_UnaryUnion(subject);
            END IF;
            RETURN CASE relation
                WHEN 'within' THEN ST_Within(subject, reference)
                WHEN 'contains' THEN ST_Contains(subject, reference)
                WHEN 'intersects' THEN ST_Intersects(subject, reference)
                WHEN 'disjoint' THEN ST_Disjoint(subject, reference)
                WHEN 'overlaps' THEN ST_Overlaps(subject, reference)
                WHEN 'equals' THEN ST_Equals(subject, reference)
            END;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    RETURN false;
END
$fn$;
"""

_SUBSCRIPTIONS = """
CREATE TABLE subscriptions (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    body jsonb NOT NULL,
    is_active boolean NOT NULL,
    expires_key text COLLATE "C",
    time_interval double precision,
    created_at text COLLATE "C" NOT NULL,
    modified_at text COLLATE "C" NOT NULL,
    times_sent bigint NOT NULL DEFAULT 0,
    times_failed bigint NOT NULL DEFAULT 0,
    last_notification text,
    last_success text,
    last_failure text,
    last_status text,
    CONSTRAINT subscriptions_tenant_id UNIQUE (tenant, id)
);
CREATE INDEX subscriptions_active ON subscriptions (expires_key) WHERE is_active;
CREATE TABLE subscription_types (
    pk bigint NOT NULL REFERENCES subscriptions (pk) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    type text COLLATE "C"
);
CREATE INDEX subscription_types_lookup ON subscription_types (tenant, type);
CREATE INDEX subscription_types_pk ON subscription_types (pk);
CREATE TABLE subscription_attrs (
    pk bigint NOT NULL REFERENCES subscriptions (pk) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    attr text COLLATE "C"
);
CREATE INDEX subscription_attrs_lookup ON subscription_attrs (tenant, attr);
CREATE INDEX subscription_attrs_pk ON subscription_attrs (pk);
"""

# Notification outbox: each write batch's changes recorded in its own transaction, claimed
# by the notifiers of every worker under a lease (FOR UPDATE SKIP LOCKED); notifications to
# send again; the next run of each periodic subscription.
_NOTIFY_OUTBOX = """
CREATE TABLE notify_changes (
    seq bigserial PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    changes bytea NOT NULL,
    created double precision NOT NULL,
    lease_until double precision NOT NULL DEFAULT 0
);
CREATE TABLE notify_retries (
    seq bigserial PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    subscription_id text COLLATE "C" NOT NULL,
    body bytea NOT NULL,
    attempts integer NOT NULL,
    next_at double precision NOT NULL,
    error text
);
CREATE INDEX notify_retries_due ON notify_retries (next_at);
ALTER TABLE subscriptions ADD COLUMN periodic_next double precision;
"""

# Entity histories (the temporal API): as in the SQLite store, one row per entity ever
# recorded, per instance series (attribute + datasetId, '' for the default instance) and per
# attribute instance; times are bigint microseconds since the epoch. Every write of a history
# first upserts (and so locks) its `temporal_entities` row: writers of one entity's history
# serialise, and the series upsert that follows always finds or makes its row.
# `temporal_rollups` sums each series' instances per hour of observed_at (`slot`): count,
# numeric count, sum, sum of squares, min, max, first and last time; aggregations over whole
# hours read it instead of every instance. Instances and rollups have no foreign key (its
# check would cost every recorded instance): deleting series deletes them in the same
# statement.
_TEMPORAL = """
CREATE TABLE temporal_entities (
    tpk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    types text[] COLLATE "C" NOT NULL,
    scopes text[] COLLATE "C",
    created_at text COLLATE "C" NOT NULL,
    modified_at text COLLATE "C" NOT NULL,
    deleted_at text COLLATE "C",
    CONSTRAINT temporal_entities_tenant_id UNIQUE (tenant, id)
) WITH (fillfactor = 80);
CREATE INDEX temporal_entities_types ON temporal_entities USING gin (types);
CREATE TABLE temporal_series (
    sid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tpk bigint NOT NULL REFERENCES temporal_entities (tpk) ON DELETE CASCADE,
    attr text COLLATE "C" NOT NULL,
    dataset_id text COLLATE "C" NOT NULL,
    CONSTRAINT temporal_series_key UNIQUE (tpk, attr, dataset_id)
);
CREATE TABLE temporal_instances (
    ipk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid bigint NOT NULL,
    observed_at bigint NOT NULL,
    created_at bigint NOT NULL,
    modified_at bigint NOT NULL,
    num double precision,
    deleted_at bigint,
    body jsonb NOT NULL
);
CREATE INDEX temporal_instances_observed ON temporal_instances (sid, observed_at)
    INCLUDE (num, deleted_at);
CREATE TABLE temporal_rollups (
    sid bigint NOT NULL,
    slot bigint NOT NULL,
    n_total bigint NOT NULL,
    n_num bigint NOT NULL,
    s1 double precision,
    s2 double precision,
    lo double precision,
    hi double precision,
    first_at bigint NOT NULL,
    last_at bigint NOT NULL,
    PRIMARY KEY (sid, slot)
) WITH (fillfactor = 80);
"""

# The one-statement writes of urbis.storage.postgres.single end with this check: when the
# entity changed since it was read (no row matched), the statement, and every journal row
# written with it, is rolled back with a serialization failure, which the store retries.
_EXPECT_ROWS = """
CREATE FUNCTION urbis_expect_rows(actual bigint, expected bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF actual <> expected THEN
        RAISE EXCEPTION 'urbis: the entity changed while it was being written'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN actual;
END
$fn$;
"""

# Each entry is one migration; its index + 1 is the schema version. Never edit a released
# migration: append a new one.
# API keys: the SHA-256 of each key, never the key; `grants` holds tenants / types / entities
# / department.
_API_KEYS = """
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    roles text[] NOT NULL,
    key_hash text NOT NULL,
    created_at text NOT NULL,
    grants jsonb NOT NULL,
    revoked_at text
);
"""

# The audit log (urbis.context.audit): records are inserted unsealed (hash NULL); the sealer
# gives them chain_pos and hash. JSON members are text, hashed as stored (jsonb would reorder
# them). `audit_chain` (one row) holds the head of the chain and its anchor, the last record
# purged by retention. The trigger keeps sealed records as they are and lets only records
# behind the anchor be deleted.
_AUDIT = """
CREATE TABLE audit_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    principal text COLLATE "C" NOT NULL,
    roles text NOT NULL,
    client text,
    request_id text,
    operation text COLLATE "C" NOT NULL,
    decision text NOT NULL,
    reason text,
    entity_ids text NOT NULL,
    entity_count integer NOT NULL,
    attributes text NOT NULL,
    chain_pos bigint,
    hash text
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE UNIQUE INDEX audit_log_chain ON audit_log (chain_pos) WHERE chain_pos IS NOT NULL;
CREATE INDEX audit_log_unsealed ON audit_log (seq) WHERE hash IS NULL;
CREATE TABLE audit_chain (
    id integer PRIMARY KEY CHECK (id = 1),
    anchor_pos bigint NOT NULL,
    anchor_hash text NOT NULL,
    anchor_at text,
    head_pos bigint NOT NULL,
    head_hash text NOT NULL
);
INSERT INTO audit_chain VALUES (1, 0, '', NULL, 0, '');
CREATE FUNCTION urbis_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND OLD.chain_pos <= (SELECT anchor_pos FROM audit_chain) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'urbis: the audit log is append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION urbis_audit_guard();
"""

MIGRATIONS: list[str] = [
    _TABLES + _DATETIME_KEY + _TIME_KEY + _GEO_RELATION,
    _SUBSCRIPTIONS,
    _NOTIFY_OUTBOX,
    _TEMPORAL,
    _EXPECT_ROWS,
    _API_KEYS,
    _AUDIT,
    TEMPORAL_PENDING,
    IOT,
    REGISTRATIONS,
]

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS urbis_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The schema could not be created or upgraded (e.g. PostGIS is not installable)."""


async def schema_version(conn: asyncpg.Connection) -> int:
    """The schema version of a database (0 before the first migration)."""
    if not await conn.fetchval("SELECT to_regclass('urbis_schema_version') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM urbis_schema_version"))


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database to the newest schema version; returns that version.

    Several workers starting together are safe: each takes the same session advisory lock,
    and the ones that wait find the migrations applied once they get it.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await _ensure_postgis(conn)
        await conn.execute(_VERSION_TABLE)
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM urbis_schema_version")
        if current > len(MIGRATIONS):
            raise MigrationError(f"the database schema (version {current}) is newer than this "
                                 f"urbis (version {len(MIGRATIONS)})")
        for index in range(current, len(MIGRATIONS)):
            async with conn.transaction():
                await conn.execute(MIGRATIONS[index])
                await conn.execute("INSERT INTO urbis_schema_version (version) VALUES ($1)",
                                   index + 1)
        return len(MIGRATIONS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _ensure_postgis(conn: asyncpg.Connection) -> None:
    installed = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
    if installed:
        return
    try:
        await conn.execute(POSTGIS)
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            "PostGIS is needed: install it on the server (Debian: postgresql-15-postgis-3) and "
            f"run CREATE EXTENSION postgis as a superuser in this database ({exc})") from exc
