-- scepter schema version 32 (PostgreSQL): the other certificates of keys
-- revoked as compromised by an older scepter.
--
-- From version 21 a keyCompromise revocation revokes every other
-- certificate of the key in its transaction (CA/B Forum BR §4.9.1.1). One
-- made before did not, and the backfills of 0020 and 0021 record its key
-- and hash the certificates without revoking them (r132 D1): the key is
-- refused for new certificates while its others stay valid. Once those
-- backfills are done, a node's open sweeps each key of compromised_keys
-- as its revocation would have, in key order and batches of a
-- transaction each, holding this row's lock: done_after is the last key
-- swept. The row goes with the last batch. A key recorded later is swept
-- by its own revocation.
CREATE TABLE compromised_keys_sweep (
    done_after BYTEA NOT NULL
);
INSERT INTO compromised_keys_sweep (done_after)
    SELECT '\x'::bytea WHERE EXISTS (SELECT 1 FROM compromised_keys)
        OR EXISTS (SELECT 1 FROM compromised_keys_backfill);
