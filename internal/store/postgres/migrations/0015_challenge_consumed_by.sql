-- scepter schema version 15 (PostgreSQL): a one-time challenge names the
-- certificate whose issuance used it up.
--
-- A device whose answer was lost asks again with the same key and the same
-- challenge, which is used up by then. consumed_by ("issuerID:serialHex",
-- '' for a challenge used up by a held request or before this version)
-- lets the server answer it with the certificate it was issued, instead of
-- refusing the challenge and leaving the device without one.
--
-- consume_challenge gains the certificate's reference as a third argument;
-- the two-argument form stays for nodes of the previous version during a
-- rolling upgrade (they record no reference).
ALTER TABLE challenges ADD COLUMN consumed_by TEXT NOT NULL DEFAULT '';

CREATE FUNCTION consume_challenge(p_now BIGINT, p_hash BYTEA, p_by TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE challenges SET consumed_at = p_now, consumed_by = p_by
        WHERE hash = p_hash AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > p_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'one-time challenge not usable' USING ERRCODE = 'SC001';
    END IF;
END
$$;
