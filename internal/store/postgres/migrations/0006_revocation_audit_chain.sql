-- scepter schema version 6 (PostgreSQL): revocation state for CRLs and OCSP,
-- the CRLs themselves, and the audit trail as a hash chain.
--
-- Same conventions as 0001: times are BIGINT microseconds since the Unix
-- epoch (NULL: unset), blobs BYTEA, optional text is '' rather than NULL.

-- Who revoked a certificate (the audit event's actor, kept on the record
-- for listings).
ALTER TABLE certificates ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';

-- Building an issuer's CRL reads its revoked, unexpired certificates: an
-- index range read on (issuer, status, not_after).
CREATE INDEX certificates_issuer_status_expiry ON certificates (issuer_id, status, not_after);

-- A counter per issuer that every change of revocation status (revoke,
-- unhold, a reason change, a superseding renewal) bumps in its own
-- transaction. Nodes poll this small table to know, within a second, that
-- a CRL must be regenerated and cached OCSP answers dropped.
CREATE TABLE revocation_state (
    issuer_id TEXT   PRIMARY KEY,
    seq       BIGINT NOT NULL
);

-- Signed CRLs, one row per generation. The CRL number only grows: a node
-- inserts number = newest + 1, and when two nodes build the same
-- generation at once the second insert hits the primary key (it waits for
-- the first to commit, then fails with unique_violation) and is dropped.
-- revocation_seq is the revocation_state.seq the CRL reflects.
CREATE TABLE crls (
    issuer_id      TEXT    NOT NULL,
    number         BIGINT  NOT NULL,
    this_update    BIGINT  NOT NULL,
    next_update    BIGINT  NOT NULL,
    revocation_seq BIGINT  NOT NULL,
    entries        INTEGER NOT NULL,
    der            BYTEA   NOT NULL,
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (issuer_id, number)
);

-- The audit trail as a hash chain: each record carries the SHA-256 of the
-- record before it (prev_hash) and its own (hash, over prev_hash and every
-- field, its id included; see pki.AuditChainHash). Records written before
-- this version are sealed into the chain, in id order, by the first start
-- that finds no audit_head row.
ALTER TABLE audit_events ADD COLUMN prev_hash BYTEA;
ALTER TABLE audit_events ADD COLUMN hash BYTEA;

-- The newest record of the chain and how many there are, updated in the
-- transaction of every append: removing the newest records, not only ones
-- in the middle, is found by `scepter audit verify`. Appenders read this
-- one row FOR UPDATE, so appenders on every node take turns and each
-- chains to the head the one before it committed.
CREATE TABLE audit_head (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    last_id   BIGINT  NOT NULL,
    last_hash BYTEA   NOT NULL,
    count     BIGINT  NOT NULL
);

-- `audit list --since`.
CREATE INDEX audit_events_time ON audit_events (time, id);
