-- scepter schema version 21 (PostgreSQL): certificates by key.
--
-- A revocation for keyCompromise must take every other certificate of
-- the key along (CA/B Forum BR §4.9.1.1): renewals and certmonger often
-- keep the key, so a device holds several. key_hash is store.KeyHash of
-- the certificate's SubjectPublicKeyInfo (as compromised_keys keeps it),
-- written with every insert; NULL for a DER that holds no key.
ALTER TABLE certificates ADD COLUMN key_hash BYTEA;
CREATE INDEX certificates_key_hash ON certificates (key_hash);

-- The certificates recorded before this version are hashed in Go (SQL
-- cannot read a DER's key) when a node opens the database, in batches of
-- a transaction each, which lock this row (nodes opening at once take
-- turns): done_upto is the highest id hashed so far, upto the highest id
-- of then (later ones are hashed when inserted). The row goes with the
-- last batch.
CREATE TABLE certificates_key_hash_backfill (
    done_upto BIGINT NOT NULL,
    upto      BIGINT NOT NULL
);
INSERT INTO certificates_key_hash_backfill (done_upto, upto)
    SELECT 0, MAX(id) FROM certificates HAVING MAX(id) IS NOT NULL;
