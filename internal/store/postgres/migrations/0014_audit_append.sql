-- scepter schema version 14 (PostgreSQL): audit_append and
-- consume_challenge, so that an issuance is one round trip.
--
-- Every issuance appends to the one audit chain, and holds its head from
-- the moment it reads it until its commit is flushed: the issuances of all
-- nodes take turns there. Read by the node, the head costs the turn a
-- round trip between node and database (the read's answer, then the
-- events). audit_append reads and locks the head, links the event to it
-- and moves it, inside the database, so the node sends BEGIN, its inserts,
-- audit_append and COMMIT in one batch.
--
-- The hash is pki.AuditChainHash: SHA-256 over the version byte (1), the
-- previous hash length-prefixed, the ID, and the tail the node computed
-- (pki.AuditChainTail: the time and the other fields, each
-- length-prefixed). The texts are stored as the node encoded them; the
-- hash covers what they encode. A missing head raises SC002: the node then
-- appends the way that recreates it.
--
-- With COMMIT in the same batch, every check that may stop the issuance
-- must be an error inside the database, which makes the server skip the
-- rest of the batch and the commit; a count the node reads comes too late.
-- So the one-time challenge is consumed by consume_challenge, which raises
-- SC001 when the challenge is not usable (consumed, locked or expired);
-- every consumer of a challenge calls it, so the rule is written once.
CREATE FUNCTION audit_append(p_time BIGINT, p_type TEXT, p_actor TEXT, p_profile TEXT,
    p_serial_hex TEXT, p_issuer_id TEXT, p_subject TEXT, p_transaction_id TEXT, p_outcome TEXT,
    p_reason TEXT, p_detail TEXT, p_tail BYTEA) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    h audit_head%ROWTYPE;
    new_id BIGINT;
    new_hash BYTEA;
BEGIN
    SELECT * INTO h FROM audit_head WHERE one = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit chain head missing' USING ERRCODE = 'SC002';
    END IF;
    new_id := h.last_id + 1;
    new_hash := sha256(decode('01', 'hex') || int8send(length(h.last_hash)::bigint) || h.last_hash
        || int8send(new_id) || p_tail);
    INSERT INTO audit_events (id, time, type, actor, profile, serial_hex, issuer_id, subject,
        transaction_id, outcome, reason, detail, prev_hash, hash)
        VALUES (new_id, p_time, p_type, p_actor, p_profile, p_serial_hex, p_issuer_id, p_subject,
        p_transaction_id, p_outcome, p_reason, p_detail, h.last_hash, new_hash);
    UPDATE audit_head SET last_id = new_id, last_hash = new_hash, count = h.count + 1 WHERE one = 1;
    RETURN new_id;
END
$$;

CREATE FUNCTION consume_challenge(p_now BIGINT, p_hash BYTEA) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE challenges SET consumed_at = p_now
        WHERE hash = p_hash AND consumed_at IS NULL AND locked_at IS NULL AND expires_at > p_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'one-time challenge not usable' USING ERRCODE = 'SC001';
    END IF;
END
$$;
