-- scepter schema version 29 (PostgreSQL): the issuing CAs' keys; the same
-- column and index as SQLite's 0029.
--
-- The CA never certifies its own keys for a client, and RecordIssuance
-- checks that in its transaction (schema version 28). An issuing CA's
-- certificate is recorded only here, not in certificates: the next CA that
-- 'scepter ca rollover' records was certified for a client until the
-- servers reloaded their CA. key_hash is store.KeyHash of the issuing CA
-- certificate's SubjectPublicKeyInfo, written with every insert; NULL for
-- a DER that holds no key. SQL cannot read a DER's key: the rows of
-- before this version are hashed in Go when a node opens the database (a
-- few rows, read again at every open until hashed), as is one that a node
-- of the previous version, still running while this one migrates, records
-- meanwhile. A nullable column and an index of a table of a few rows: the
-- migration holds no one up.
ALTER TABLE ca_generations ADD COLUMN key_hash BYTEA;
CREATE INDEX ca_generations_key_hash ON ca_generations (key_hash);
