-- scepter schema version 8 (SQLite): people and API tokens, console
-- sessions, certificate search, and the counters the dashboard reads.
--
-- Same conventions as 0001: times are INTEGER microseconds since the Unix
-- epoch (NULL: unset), optional text is '' rather than NULL, STRICT.

-- Console users. Only an argon2id hash of the password is stored. A run of
-- failed logins locks the account until locked_until (backing off).
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL,                -- admin | operator | auditor
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL DEFAULT '',
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    last_login_at INTEGER
) STRICT;

-- API bearer tokens; only the SHA-256 of the secret is stored. A name is
-- unique among the tokens that are not revoked.
CREATE TABLE api_tokens (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL DEFAULT '',
    expires_at   INTEGER,                          -- NULL: no expiry
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Console sessions, in the store so any node behind a load balancer
-- answers (nothing sticky); only the SHA-256 of the cookie is stored.
CREATE TABLE sessions (
    hash         BLOB    PRIMARY KEY,
    user_name    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    remote_addr  TEXT    NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_name);

-- Certificate search by any part of the subject, a SAN or the serial: an
-- FTS5 trigram index, so a substring is an index lookup at any size
-- (PostgreSQL: pg_trgm). Certificates are immutable but for their status,
-- so the index follows inserts and deletes.
CREATE VIRTUAL TABLE certificates_search USING fts5(text, tokenize = 'trigram', content = '');

INSERT INTO certificates_search (rowid, text)
    SELECT id, lower(subject_dn || ' ' || sans || ' ' || serial_hex) FROM certificates;

CREATE TRIGGER certificates_search_insert AFTER INSERT ON certificates BEGIN
    INSERT INTO certificates_search (rowid, text) VALUES (new.id, lower(new.subject_dn || ' ' || new.sans || ' ' || new.serial_hex));
END;

CREATE TRIGGER certificates_search_delete AFTER DELETE ON certificates BEGIN
    INSERT INTO certificates_search (certificates_search, rowid, text)
        VALUES ('delete', old.id, lower(old.subject_dn || ' ' || old.sans || ' ' || old.serial_hex));
END;

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
    profile    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    expiry_day INTEGER NOT NULL,                  -- not_after / 86400000000
    n          INTEGER NOT NULL,
    PRIMARY KEY (profile, status, expiry_day)
) STRICT, WITHOUT ROWID;

INSERT INTO certificate_counts (profile, status, expiry_day, n)
    SELECT profile, status, not_after / 86400000000, count(*) FROM certificates
    WHERE protocol <> 'internal'
    GROUP BY profile, status, not_after / 86400000000;

CREATE TRIGGER certificate_counts_insert AFTER INSERT ON certificates
    WHEN new.protocol <> 'internal' BEGIN
    INSERT INTO certificate_counts (profile, status, expiry_day, n)
        VALUES (new.profile, new.status, new.not_after / 86400000000, 1)
        ON CONFLICT (profile, status, expiry_day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER certificate_counts_status AFTER UPDATE OF status ON certificates
    WHEN old.status <> new.status AND old.protocol <> 'internal' BEGIN
    UPDATE certificate_counts SET n = n - 1
        WHERE profile = old.profile AND status = old.status AND expiry_day = old.not_after / 86400000000;
    INSERT INTO certificate_counts (profile, status, expiry_day, n)
        VALUES (new.profile, new.status, new.not_after / 86400000000, 1)
        ON CONFLICT (profile, status, expiry_day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER certificate_counts_delete AFTER DELETE ON certificates
    WHEN old.protocol <> 'internal' BEGIN
    UPDATE certificate_counts SET n = n - 1
        WHERE profile = old.profile AND status = old.status AND expiry_day = old.not_after / 86400000000;
END;

-- What happened per UTC day (issued, renewed, revoked, refused), kept
-- with the audit events that record it, for the dashboard's chart. The
-- server's issuance of its own certificates (actor system) is left out.
CREATE TABLE daily_counts (
    day  INTEGER NOT NULL,                        -- time / 86400000000
    kind TEXT    NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (day, kind)
) STRICT, WITHOUT ROWID;

INSERT INTO daily_counts (day, kind, n)
    SELECT time / 86400000000,
        CASE type WHEN 'certificate.issued' THEN 'issued' WHEN 'certificate.renewed' THEN 'renewed'
            WHEN 'certificate.revoked' THEN 'revoked' ELSE 'refused' END, count(*)
    FROM audit_events
    WHERE type IN ('certificate.issued', 'certificate.renewed', 'certificate.revoked', 'enrollment.failed', 'request.refused')
        AND actor <> 'system'
    GROUP BY 1, 2;

CREATE TRIGGER daily_counts_event AFTER INSERT ON audit_events
    WHEN new.type IN ('certificate.issued', 'certificate.renewed', 'certificate.revoked', 'enrollment.failed', 'request.refused')
        AND new.actor <> 'system'
BEGIN
    INSERT INTO daily_counts (day, kind, n)
        VALUES (new.time / 86400000000,
            CASE new.type WHEN 'certificate.issued' THEN 'issued' WHEN 'certificate.renewed' THEN 'renewed'
                WHEN 'certificate.revoked' THEN 'revoked' ELSE 'refused' END, 1)
        ON CONFLICT (day, kind) DO UPDATE SET n = n + 1;
END;
