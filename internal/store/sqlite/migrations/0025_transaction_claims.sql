-- scepter schema version 25 (SQLite): claims on SCEP transactions.
--
-- Copies of one PKCSReq (the same key, profile and transaction ID) sent at
-- once each found no certificate of their transaction and each had one
-- signed. An issuance of such a request now claims its transaction, with
-- its serial's reservation (ReserveSerialClaiming), before the CA key
-- signs: the primary key lets one claimant win, and the others answer with
-- its certificate. A claim lapses at expires_at (an issuance that died
-- holding it), and PurgeExpired deletes it then. The profile and the
-- transaction ID are kept as the client's bytes.
CREATE TABLE transaction_claims (
    key_hash       BLOB    NOT NULL,
    profile        BLOB    NOT NULL,
    transaction_id BLOB    NOT NULL,
    claimant       BLOB    NOT NULL,
    claimed_at     INTEGER NOT NULL,                  -- unix microseconds
    expires_at     INTEGER NOT NULL,
    PRIMARY KEY (key_hash, profile, transaction_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX transaction_claims_expires ON transaction_claims (expires_at);
