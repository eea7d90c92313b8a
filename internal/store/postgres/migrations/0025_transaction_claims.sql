-- scepter schema version 25 (PostgreSQL): claims on SCEP transactions; the
-- same table as SQLite's 0025.
--
-- Copies of one PKCSReq (the same key, profile and transaction ID) sent at
-- once, to one node or several, each found no certificate of their
-- transaction and each had one signed. An issuance of such a request now
-- claims its transaction, with its serial's reservation
-- (ReserveSerialClaiming), before the CA key signs: the primary key lets
-- one claimant win, and the others answer with its certificate. A claim
-- lapses at expires_at (an issuance that died holding it), and
-- PurgeExpired deletes it then. The profile and the transaction ID are
-- kept as the client's bytes. A new table only: nodes of the previous
-- version, still running while this one migrates, do not see it.
CREATE TABLE transaction_claims (
    key_hash       BYTEA  NOT NULL,
    profile        BYTEA  NOT NULL,
    transaction_id BYTEA  NOT NULL,
    claimant       BYTEA  NOT NULL,
    claimed_at     BIGINT NOT NULL,                   -- unix microseconds
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (key_hash, profile, transaction_id)
);

CREATE INDEX transaction_claims_expires ON transaction_claims (expires_at);
