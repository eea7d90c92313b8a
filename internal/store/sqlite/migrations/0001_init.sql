-- scepter schema version 1 (SQLite).
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); NULL means unset.
-- Integers sort and compare cheaply in indexes, microseconds reach year 9999
-- (RFC 5280's "no well-defined expiration" NotAfter) where nanoseconds stop in
-- 2262, and they are PostgreSQL's timestamp resolution, so both drivers
-- round-trip the same values. Optional text is '' rather than NULL so that
-- equality filters and Go strings need no special case. Tables are STRICT so
-- a value of the wrong type is an error instead of silently stored.

-- The inventory: every certificate we issued (and later, imported or
-- discovered ones: issuer_id need not be one of our CAs, source says where
-- the record came from).
CREATE TABLE certificates (
    id             INTEGER PRIMARY KEY,
    issuer_id      TEXT    NOT NULL,
    serial_hex     TEXT    NOT NULL,
    issuer_dn      TEXT    NOT NULL DEFAULT '',
    subject_dn     TEXT    NOT NULL DEFAULT '',
    sans           TEXT    NOT NULL DEFAULT '[]', -- JSON array of strings
    not_before     INTEGER NOT NULL,
    not_after      INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    revoked_at     INTEGER,
    revoke_reason  INTEGER,                       -- RFC 5280 CRLReason; NULL unless revoked
    profile        TEXT    NOT NULL DEFAULT '',
    protocol       TEXT    NOT NULL DEFAULT '',
    source         TEXT    NOT NULL DEFAULT '',
    requester_addr TEXT    NOT NULL DEFAULT '',
    transaction_id TEXT    NOT NULL DEFAULT '',
    key_type       TEXT    NOT NULL DEFAULT '',
    renewed_from   TEXT    NOT NULL DEFAULT '',   -- "issuerID:serialHex"
    created_at     INTEGER NOT NULL,
    der            BLOB    NOT NULL,
    UNIQUE (issuer_id, serial_hex)
) STRICT;

-- Inventory listing is keyset-paginated in two orders: id DESC (newest
-- first) and (not_after, id) (expiring first). Each equality filter has an
-- index for each order, so the first page and every later page are an index
-- range read that stops at LIMIT, at any table size.
CREATE INDEX certificates_serial         ON certificates (serial_hex);
CREATE INDEX certificates_not_after      ON certificates (not_after, id);
CREATE INDEX certificates_status         ON certificates (status, id);
CREATE INDEX certificates_status_expiry  ON certificates (status, not_after, id);
CREATE INDEX certificates_profile        ON certificates (profile, id);
CREATE INDEX certificates_profile_expiry ON certificates (profile, not_after, id);
CREATE INDEX certificates_issuer         ON certificates (issuer_id, id);
CREATE INDEX certificates_issuer_expiry  ON certificates (issuer_id, not_after, id);
CREATE INDEX certificates_transaction    ON certificates (transaction_id);

-- Serials are reserved before anything is signed with them and never
-- released, so a serial is unique per issuer even when issuance fails.
CREATE TABLE serials (
    issuer_id   TEXT    NOT NULL,
    serial_hex  TEXT    NOT NULL,
    reserved_at INTEGER NOT NULL,
    PRIMARY KEY (issuer_id, serial_hex)
) STRICT, WITHOUT ROWID;

-- One-time enrollment challenges; only the SHA-256 of the secret is stored.
CREATE TABLE challenges (
    id          TEXT    PRIMARY KEY,
    hash        BLOB    NOT NULL UNIQUE,
    profile     TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    created_by  TEXT    NOT NULL DEFAULT ''
) STRICT;

-- SCEP replay protection: a (transactionID, senderNonce) pair is refused
-- while remembered; expired pairs are purged by PurgeExpired.
CREATE TABLE nonces (
    transaction_id TEXT    NOT NULL,
    sender_nonce   BLOB    NOT NULL,
    expires_at     INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, sender_nonce)
) STRICT, WITHOUT ROWID;

CREATE INDEX nonces_expires ON nonces (expires_at);

-- The audit trail. AUTOINCREMENT so an id is never reused, even after the
-- newest rows are deleted: ids are the paging key and, later, the order of
-- the hash chain.
CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    time           INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    actor          TEXT    NOT NULL DEFAULT '',
    profile        TEXT    NOT NULL DEFAULT '',
    serial_hex     TEXT    NOT NULL DEFAULT '',
    issuer_id      TEXT    NOT NULL DEFAULT '',
    subject        TEXT    NOT NULL DEFAULT '',
    transaction_id TEXT    NOT NULL DEFAULT '',
    outcome        TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL DEFAULT '',
    detail         TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX audit_events_type   ON audit_events (type, id);
CREATE INDEX audit_events_serial ON audit_events (serial_hex, id);
