-- scepter schema version 29 (SQLite): the issuing CAs' keys.
--
-- The CA never certifies its own keys for a client, and RecordIssuance
-- checks that in its transaction (schema version 28). An issuing CA's
-- certificate is recorded only here, not in certificates: the next CA that
-- 'scepter ca rollover' records was certified for a client until the
-- servers reloaded their CA. key_hash is store.KeyHash of the issuing CA
-- certificate's SubjectPublicKeyInfo, written with every insert; NULL for
-- a DER that holds no key. SQL cannot read a DER's key: the rows of
-- before this version are hashed in Go when a store opens the database (a
-- few rows, read again at every open until hashed).
ALTER TABLE ca_generations ADD COLUMN key_hash BLOB;
CREATE INDEX ca_generations_key_hash ON ca_generations (key_hash);
