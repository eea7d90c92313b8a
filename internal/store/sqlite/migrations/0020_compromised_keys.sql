-- scepter schema version 20 (SQLite): keys revoked as compromised.
--
-- A CA must not certify a key it knows is compromised (CA/B Forum BR
-- §6.1.1.3). A revocation for keyCompromise records the certificate's key
-- here, by the SHA-256 of its SubjectPublicKeyInfo (store.KeyHash), in the
-- revocation's transaction; every issuance looks its key up first (one
-- primary-key read). The first certificate revoked for it is kept.
CREATE TABLE compromised_keys (
    key_hash    BLOB PRIMARY KEY,
    issuer_id   TEXT NOT NULL,
    serial_hex  TEXT NOT NULL,
    revoked_at  INTEGER NOT NULL              -- unix microseconds
) WITHOUT ROWID;

-- The keys of certificates revoked for keyCompromise before this version
-- are hashed in Go (SQL cannot read a certificate's DER) the first time a
-- store opens the database: this row says that is still to do, and goes
-- in the transaction that does it.
CREATE TABLE compromised_keys_backfill (
    pending INTEGER NOT NULL
);
INSERT INTO compromised_keys_backfill (pending) VALUES (1);
