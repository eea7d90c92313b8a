-- scepter schema version 8 (PostgreSQL): people and API tokens, console
-- sessions, certificate search, and the counters the dashboard reads.
--
-- Same conventions as 0001: times are BIGINT microseconds since the Unix
-- epoch (NULL: unset), blobs BYTEA, optional text is '' rather than NULL.

-- Console users. Only an argon2id hash of the password is stored. A run of
-- failed logins locks the account until locked_until (backing off).
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL,                -- admin | operator | auditor
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL DEFAULT '',
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    last_login_at BIGINT
);

-- API bearer tokens; only the SHA-256 of the secret is stored. A name is
-- unique among the tokens that are not revoked.
CREATE TABLE api_tokens (
    id           TEXT   PRIMARY KEY,
    name         TEXT   NOT NULL,
    role         TEXT   NOT NULL,
    hash         BYTEA  NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    created_by   TEXT   NOT NULL DEFAULT '',
    expires_at   BIGINT,                           -- NULL: no expiry
    revoked_at   BIGINT,
    last_used_at BIGINT
);

CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Console sessions, in the store so any node behind a load balancer
-- answers (nothing sticky); only the SHA-256 of the cookie is stored.
CREATE TABLE sessions (
    hash         BYTEA  PRIMARY KEY,
    user_name    TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    remote_addr  TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_name);

-- Certificate search by any part of the subject, a SAN or the serial: a
-- pg_trgm GIN index on the same lower-cased text SQLite's FTS5 trigram
-- table holds, so a substring of three characters or more is an index
-- lookup at any size. The store's queries spell the expression exactly as
-- here (the planner matches it). pg_trgm ships with PostgreSQL and is a
-- trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX certificates_search ON certificates
    USING gin (lower(subject_dn || ' ' || sans || ' ' || serial_hex) gin_trgm_ops);

-- Listing by protocol, and by issuance time (created_at), newest first.
CREATE INDEX certificates_protocol ON certificates (protocol, id);
CREATE INDEX certificates_created ON certificates (created_at, id);

-- The dashboard's counts without scanning the inventory: how many
-- certificates of each profile and status expire on each UTC day. Kept by
-- triggers on every insert, status change and delete, so it can never
-- disagree with the inventory; "expired" is a sum over the days before
-- today, "expiring within 30 days" over the next 30. The server's own
-- certificates (protocol internal: HTTPS, OCSP responders), which it
-- renews itself, are left out.
CREATE TABLE certificate_counts (
    profile    TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    expiry_day BIGINT NOT NULL,                   -- not_after / 86400000000
    n          BIGINT NOT NULL,
    PRIMARY KEY (profile, status, expiry_day)
);

INSERT INTO certificate_counts (profile, status, expiry_day, n)
    SELECT profile, status, not_after / 86400000000, count(*) FROM certificates
    WHERE protocol <> 'internal'
    GROUP BY profile, status, not_after / 86400000000;

CREATE FUNCTION certificate_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO certificate_counts (profile, status, expiry_day, n)
        VALUES (NEW.profile, NEW.status, NEW.not_after / 86400000000, 1)
        ON CONFLICT (profile, status, expiry_day) DO UPDATE SET n = certificate_counts.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER certificate_counts_insert AFTER INSERT ON certificates
    FOR EACH ROW WHEN (NEW.protocol <> 'internal')
    EXECUTE FUNCTION certificate_counts_insert();

CREATE FUNCTION certificate_counts_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE certificate_counts SET n = n - 1
        WHERE profile = OLD.profile AND status = OLD.status AND expiry_day = OLD.not_after / 86400000000;
    INSERT INTO certificate_counts (profile, status, expiry_day, n)
        VALUES (NEW.profile, NEW.status, NEW.not_after / 86400000000, 1)
        ON CONFLICT (profile, status, expiry_day) DO UPDATE SET n = certificate_counts.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER certificate_counts_status AFTER UPDATE OF status ON certificates
    FOR EACH ROW WHEN (OLD.status <> NEW.status AND OLD.protocol <> 'internal')
    EXECUTE FUNCTION certificate_counts_status();

CREATE FUNCTION certificate_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE certificate_counts SET n = n - 1
        WHERE profile = OLD.profile AND status = OLD.status AND expiry_day = OLD.not_after / 86400000000;
    RETURN NULL;
END
$$;

CREATE TRIGGER certificate_counts_delete AFTER DELETE ON certificates
    FOR EACH ROW WHEN (OLD.protocol <> 'internal')
    EXECUTE FUNCTION certificate_counts_delete();

-- What happened per UTC day (issued, renewed, revoked, refused), kept
-- with the audit events that record it, for the dashboard's chart. The
-- server's issuance of its own certificates (actor system) is left out.
-- Only appenders, who hold the audit_head row, write it.
CREATE TABLE daily_counts (
    day  BIGINT NOT NULL,                         -- time / 86400000000
    kind TEXT   NOT NULL,
    n    BIGINT NOT NULL,
    PRIMARY KEY (day, kind)
);

INSERT INTO daily_counts (day, kind, n)
    SELECT time / 86400000000,
        CASE type WHEN 'certificate.issued' THEN 'issued' WHEN 'certificate.renewed' THEN 'renewed'
            WHEN 'certificate.revoked' THEN 'revoked' ELSE 'refused' END, count(*)
    FROM audit_events
    WHERE type IN ('certificate.issued', 'certificate.renewed', 'certificate.revoked', 'enrollment.failed', 'request.refused')
        AND actor <> 'system'
    GROUP BY 1, 2;

CREATE FUNCTION daily_counts_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_counts (day, kind, n)
        VALUES (NEW.time / 86400000000,
            CASE NEW.type WHEN 'certificate.issued' THEN 'issued' WHEN 'certificate.renewed' THEN 'renewed'
                WHEN 'certificate.revoked' THEN 'revoked' ELSE 'refused' END, 1)
        ON CONFLICT (day, kind) DO UPDATE SET n = daily_counts.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER daily_counts_event AFTER INSERT ON audit_events
    FOR EACH ROW WHEN (NEW.type IN ('certificate.issued', 'certificate.renewed', 'certificate.revoked', 'enrollment.failed', 'request.refused')
        AND NEW.actor <> 'system')
    EXECUTE FUNCTION daily_counts_event();
