-- scepter schema version 31 (PostgreSQL): audit_append refuses a trail
-- with a record after its head.
--
-- A record renumbered past the head, or written there outside scepter,
-- leaves a trail that no longer verifies ('scepter serve' refuses to
-- start on it). Before this version audit_append chained on below such a
-- record, into the gap, until the next id met it: the trail grew while it
-- could not be trusted. Now the head's read takes the trail's newest id
-- beside it (max over the primary key: one index seek, no statement
-- more) and raises SC003, naming both records, when a record comes after
-- the head; the node answers store.ErrAuditTampered, as its own way of
-- appending (lockHeadQuery) does. The signature is unchanged, so a node
-- of version 30 still running while this one migrates calls it as
-- before (and takes SC003 for an error of its own).
CREATE OR REPLACE FUNCTION audit_append(p_time BIGINT, p_type TEXT, p_actor TEXT, p_profile TEXT,
    p_serial_hex TEXT, p_issuer_id TEXT, p_subject TEXT, p_transaction_id TEXT, p_outcome TEXT,
    p_reason TEXT, p_detail TEXT, p_tail BYTEA) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    h audit_head%ROWTYPE;
    newest BIGINT;
    new_id BIGINT;
    new_hash BYTEA;
BEGIN
    SELECT last_id, last_hash, count, (SELECT max(id) FROM audit_events)
        INTO h.last_id, h.last_hash, h.count, newest
        FROM audit_head WHERE one = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit chain head missing' USING ERRCODE = 'SC002';
    END IF;
    IF newest > h.last_id THEN
        RAISE EXCEPTION 'record % comes after the head, record %', newest, h.last_id USING ERRCODE = 'SC003';
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
