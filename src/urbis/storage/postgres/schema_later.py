"""The later PostgreSQL migrations' SQL (history journal, IoT agents, context-source
registrations); the MIGRATIONS list in urbis.storage.postgres.schema orders them."""

# Entity changes waiting to be written into histories (see the SQLite schema): one row per
# write batch, settled in bulk by one worker at a time (urbis.storage.postgres.temporal).
TEMPORAL_PENDING = """
CREATE TABLE temporal_pending (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    size integer NOT NULL,
    changes bytea NOT NULL
);
"""

# IoT agents (urbis.storage.devices_base): service groups unique by (apikey, resource),
# devices by (tenant, device_id) and (apikey, device_id); `body` is the provisioned JSON text.
IOT = """
CREATE TABLE iot_groups (
    apikey text COLLATE "C" NOT NULL,
    resource text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    service_path text COLLATE "C" NOT NULL,
    entity_type text COLLATE "C" NOT NULL,
    body text NOT NULL,
    created_at text NOT NULL,
    PRIMARY KEY (apikey, resource)
);
CREATE INDEX iot_groups_scope ON iot_groups (tenant, service_path);
CREATE TABLE iot_devices (
    tenant text COLLATE "C" NOT NULL,
    device_id text COLLATE "C" NOT NULL,
    service_path text COLLATE "C" NOT NULL,
    apikey text COLLATE "C" NOT NULL,
    entity_name text NOT NULL,
    entity_type text NOT NULL,
    body text NOT NULL,
    created_at text NOT NULL,
    last_seen text,
    PRIMARY KEY (tenant, device_id)
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX iot_devices_key ON iot_devices (apikey, device_id) WHERE apikey <> '';
CREATE INDEX iot_devices_scope ON iot_devices (tenant, service_path, device_id);
CREATE TABLE iot_dead_letters (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text NOT NULL,
    tenant text COLLATE "C",
    apikey text NOT NULL,
    device_id text NOT NULL,
    transport text NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL,
    payload text NOT NULL
);
"""

# Context source registrations (urbis.storage.registrations_base): `body` is the expanded
# document, `mode` the effective mode, `ops` the bit mask of the supported operations
# (urbis.context.registration_ops). The index tables map each information item to its
# (type, entity id) pairs and attributes, '' meaning any (so that a look-up is
# `type = ANY(['', ...])`, index equality only); `registration_changes` records
# every write for the subscriptions to registrations (claimed under a lease).
# `csource_subscriptions` and its index tables have the shape of `subscriptions`.
REGISTRATIONS = """
CREATE TABLE registrations (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    body jsonb NOT NULL,
    mode text NOT NULL,
    ops bigint NOT NULL,
    expires_key text COLLATE "C",
    created_at text COLLATE "C" NOT NULL,
    modified_at text COLLATE "C" NOT NULL,
    times_sent bigint NOT NULL DEFAULT 0,
    times_failed bigint NOT NULL DEFAULT 0,
    last_success text,
    last_failure text,
    status text,
    CONSTRAINT registrations_tenant_id UNIQUE (tenant, id)
);
CREATE INDEX registrations_mode ON registrations (tenant, mode);
CREATE TABLE registration_entities (
    pk bigint NOT NULL REFERENCES registrations (pk) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    info integer NOT NULL,
    type text COLLATE "C" NOT NULL,
    entity_id text COLLATE "C" NOT NULL
);
CREATE INDEX registration_entities_type ON registration_entities (tenant, type, entity_id);
CREATE INDEX registration_entities_id ON registration_entities (tenant, entity_id);
CREATE INDEX registration_entities_pk ON registration_entities (pk);
CREATE TABLE registration_attrs (
    pk bigint NOT NULL REFERENCES registrations (pk) ON DELETE CASCADE,
    info integer NOT NULL,
    attr text COLLATE "C" NOT NULL
);
CREATE INDEX registration_attrs_pk ON registration_attrs (pk, info, attr);
CREATE TABLE registration_changes (
    seq bigserial PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    before jsonb,
    after jsonb,
    created double precision NOT NULL,
    lease_until double precision NOT NULL DEFAULT 0
);
CREATE TABLE csource_subscriptions (
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
    CONSTRAINT csource_subscriptions_tenant_id UNIQUE (tenant, id)
);
CREATE INDEX csource_subscriptions_active ON csource_subscriptions (expires_key)
    WHERE is_active;
CREATE TABLE csource_subscription_types (
    pk bigint NOT NULL REFERENCES csource_subscriptions (pk) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    type text COLLATE "C"
);
CREATE INDEX csource_subscription_types_lookup ON csource_subscription_types (tenant, type);
CREATE INDEX csource_subscription_types_pk ON csource_subscription_types (pk);
CREATE TABLE csource_subscription_attrs (
    pk bigint NOT NULL REFERENCES csource_subscriptions (pk) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    attr text COLLATE "C"
);
CREATE INDEX csource_subscription_attrs_lookup ON csource_subscription_attrs (tenant, attr);
CREATE INDEX csource_subscription_attrs_pk ON csource_subscription_attrs (pk);
"""
