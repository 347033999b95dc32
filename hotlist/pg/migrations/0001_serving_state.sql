-- Consumers of the patrol API, their hashed keys, revocations, acknowledgements, pull
-- stamps (hotlist/serve/registry_pg.py), and the replicas serving them.

CREATE TABLE consumers (
    name text PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,          -- SHA-256 of the key; the key is shown once
    agency_ori text NOT NULL,
    agency_name text NOT NULL,
    agency_kind text NOT NULL,
    created_at text NOT NULL,               -- ISO 8601 UTC, as the local registry keeps it
    revoked_at text,
    acked_version bigint,
    acked_at text
);

-- Each advance of a consumer's acknowledged version (the deletion report reads it).
CREATE TABLE acks (
    consumer text NOT NULL REFERENCES consumers (name),
    version bigint NOT NULL,
    at text NOT NULL
);
CREATE INDEX acks_by_consumer ON acks (consumer, version);

-- When each consumer last pulled (at most one write per consumer per few seconds).
CREATE TABLE last_seen (
    consumer text PRIMARY KEY,
    pulled_at text NOT NULL
);

-- A change to who may be served (a new key, a rotation, a revocation) is announced to
-- every replica at once: their key caches listen on this channel.
CREATE FUNCTION hotlist_consumers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hotlist_consumers', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER consumers_changed
    AFTER INSERT OR DELETE OR UPDATE OF key_hash, revoked_at, agency_ori, agency_kind
    ON consumers FOR EACH STATEMENT EXECUTE FUNCTION hotlist_consumers_changed();

-- Every replica's heartbeat and the published version it serves: the purge waits for the
-- live ones to serve the new version before it reports success (hotlist/serve/replicas.py,
-- hotlist/purge_replicas.py). ``instance`` tells apart two processes given the same name.
CREATE TABLE replicas (
    name text PRIMARY KEY,
    instance text NOT NULL,
    serving_version bigint,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
