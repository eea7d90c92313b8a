-- scepter schema version 32 (SQLite): the other certificates of keys
-- revoked as compromised by an older scepter.
--
-- From version 21 a keyCompromise revocation revokes every other
-- certificate of the key in its transaction (CA/B Forum BR §4.9.1.1). One
-- made before did not, and the backfills of 0020 and 0021 record its key
-- and hash the certificates without revoking them (r132 D1): the key is
-- refused for new certificates while its others stay valid. Once those
-- backfills are done, Open sweeps each key of compromised_keys as its
-- revocation would have, in key order and batches of a transaction each:
-- done_after is the last key swept. The row goes with the last batch. A
-- key recorded later is swept by its own revocation.
CREATE TABLE compromised_keys_sweep (
    done_after BLOB NOT NULL
);
INSERT INTO compromised_keys_sweep (done_after)
    SELECT x'' WHERE EXISTS (SELECT 1 FROM compromised_keys)
        OR EXISTS (SELECT 1 FROM compromised_keys_backfill);
