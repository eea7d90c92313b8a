-- scepter schema version 2 (SQLite): enrollment requests held for approval.
--
-- Same conventions as 0001: times are INTEGER microseconds since the Unix
-- epoch (NULL: unset), optional text is '' rather than NULL, STRICT.

-- A request a profile holds for manual approval, kept with its outcome
-- until expires_at (the profile's retention) so that CertPoll and repeated
-- PKCSReqs can be answered by any node. PurgeExpired deletes it after that,
-- whatever its status.
CREATE TABLE enrollment_requests (
    -- Insertion order, for "newest first". An INTEGER PRIMARY KEY is the
    -- rowid, which VACUUM keeps (an implicit rowid it may renumber); the
    -- public identifier is id.
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    transaction_id  TEXT    NOT NULL,
    profile         TEXT    NOT NULL DEFAULT '',
    protocol        TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL,            -- pending | issued | rejected
    subject_dn      TEXT    NOT NULL DEFAULT '',
    sans            TEXT    NOT NULL DEFAULT '[]', -- JSON array of strings
    csr             BLOB    NOT NULL,            -- DER PKCS#10
    signer_cert     BLOB,                        -- DER; NULL when none
    requester_addr  TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_at      INTEGER,
    decided_by      TEXT    NOT NULL DEFAULT '',
    reason          TEXT    NOT NULL DEFAULT '', -- rejection reason
    renewed_from    TEXT    NOT NULL DEFAULT '', -- "issuerID:serialHex"
    cert_issuer_id  TEXT    NOT NULL DEFAULT '', -- set once issued
    cert_serial_hex TEXT    NOT NULL DEFAULT ''
) STRICT;

-- At most one pending request per (profile, transaction ID): a repeated
-- PKCSReq, on any node, gets ErrConflict and answers PENDING. Decided
-- requests do not count, so a client may start over with the same ID.
CREATE UNIQUE INDEX enrollment_requests_one_pending
    ON enrollment_requests (profile, transaction_id) WHERE status = 'pending';

-- RequestByTransaction: the newest of a (profile, transaction ID).
CREATE INDEX enrollment_requests_transaction
    ON enrollment_requests (profile, transaction_id, seq);

-- ListRequests, newest first, by status, by profile, or both: each an index
-- range read in output order that stops at LIMIT.
CREATE INDEX enrollment_requests_status         ON enrollment_requests (status, seq);
CREATE INDEX enrollment_requests_profile        ON enrollment_requests (profile, seq);
CREATE INDEX enrollment_requests_profile_status ON enrollment_requests (profile, status, seq);

-- PurgeExpired.
CREATE INDEX enrollment_requests_expires ON enrollment_requests (expires_at);
