-- The SB 34 access log when it lives in PostgreSQL (hotlist/audit/pg.py): one HMAC chain
-- shared by every `hotlist serve` replica and the command line. The HMAC key is NOT here:
-- it stays in data_dir/secrets/audit-hmac.key on each host, so that whoever can write
-- these tables still cannot recompute the chain after editing them.

-- One row per access, the fields exactly as they are hashed: `hash` is the HMAC-SHA256,
-- with the audit key, of the canonical JSON of every other column (`time` is kept as the
-- ISO 8601 text that was hashed, not re-parsed into a timestamp).
CREATE TABLE access_log (
    seq bigint PRIMARY KEY,
    time text NOT NULL,
    "user" text NOT NULL,
    organization text NOT NULL,
    purpose text NOT NULL,
    data_element text NOT NULL,
    outcome text NOT NULL,
    channel text NOT NULL,
    client text NOT NULL,
    prev text NOT NULL,
    hash text NOT NULL
);
-- `--since` reads and retention's cut-off (all times are UTC in one format, so the text
-- sorts as the time does).
CREATE INDEX access_log_by_time ON access_log (time);

-- Where the chain ends: the next record gets seq + 1 and prev = hash. Appends move it
-- with a compare-and-set in the same statement that inserts, so two writers can never
-- both extend the same record. `token`: the random number of the append that moved it
-- last (how a writer tells its own move from another writer's identical one).
CREATE TABLE access_log_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL,
    token bigint NOT NULL DEFAULT 0
);
INSERT INTO access_log_head (one, seq, hash)
    VALUES (true, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The chain's head written down at moments (hourly, each purge and report) and each
-- retention cut; `mac` is the HMAC of the other fields with the audit key.
CREATE TABLE access_log_anchors (
    id bigserial PRIMARY KEY,
    at text NOT NULL,
    segment text NOT NULL,
    seq bigint NOT NULL,
    hmac text NOT NULL,
    kind text NOT NULL,
    place text NOT NULL,
    mac text NOT NULL
);

-- Which key the chain is made with: an HMAC of a fixed label with the key (the key
-- itself cannot be derived from it). A writer started with another key is refused
-- instead of forking the chain into records no one can verify.
CREATE TABLE access_log_key (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    identity text NOT NULL,
    recorded_at text NOT NULL
);
