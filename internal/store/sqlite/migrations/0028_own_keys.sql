-- scepter schema version 28 (SQLite): the server's own keys.
--
-- The CA never certifies its own keys for a client, and RecordIssuance
-- checks that in its transaction, by the key: a new RA that 'scepter ca
-- renew-ra' or 'ca rollover' recorded is refused at once, not only once
-- the servers reload their CA. The index of every certificate's key_hash
-- would read all the certificates of a key enrolled over and over; this
-- one holds only the server's own certificates (protocol internal), a few
-- per node and year, so the check is one search of a small index.
CREATE INDEX certificates_own_keys ON certificates (key_hash) WHERE protocol = 'internal';
