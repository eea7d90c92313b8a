-- scepter schema version 15 (SQLite): a one-time challenge names the
-- certificate whose issuance used it up.
--
-- A device whose answer was lost asks again with the same key and the same
-- challenge, which is used up by then. consumed_by ("issuerID:serialHex",
-- '' for a challenge used up by a held request or before this version)
-- lets the server answer it with the certificate it was issued, instead of
-- refusing the challenge and leaving the device without one. It is written
-- by the UPDATE that consumes the challenge, so it costs no statement.
ALTER TABLE challenges ADD COLUMN consumed_by TEXT NOT NULL DEFAULT '';
