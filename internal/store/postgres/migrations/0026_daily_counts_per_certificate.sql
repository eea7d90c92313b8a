-- scepter schema version 26 (PostgreSQL): the dashboard's daily counts
-- count certificates, and leave out the server's own alike.
--
-- 0008 counted every certificate.revoked event as a revocation, so one
-- certificate held, then made permanent, then raised to keyCompromise
-- counted three times; and it left out the server's own certificates by
-- the actor 'system', which the SCEP RA's replacement (actor
-- 'system:NODE') is not, while by_status leaves them all out.
--
-- Now "revoked" on a day is the certificates that became revoked (a hold
-- included) that day for the first time: a trigger on the certificate's
-- status, not on the events. A hold made permanent or a reason raised
-- keeps the status; a certificate whose hold was lifted (unheld_at set,
-- never cleared) was counted at its first hold and is not counted again
-- when held or revoked later. "issued" and "renewed" leave out the
-- server's own certificates by their profiles, the names no configured
-- profile may take (config.ReservedProfileNames): the SCEP RA, the OCSP
-- responders and HTTPS, which are exactly the certificates of protocol
-- internal that by_status leaves out. "refused" is as before.
--
-- The revoked row is written by the revoking transaction when it updates
-- the certificate, before it takes the audit chain's head: a revocation
-- locks its rows first and the head after them (as RecordIssuance orders
-- a supersede), and appenders holding the head only write the other
-- kinds, so the two never wait for each other the other way round.
CREATE OR REPLACE FUNCTION daily_counts_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_counts (day, kind, n)
        VALUES (NEW.time / 86400000000,
            CASE NEW.type WHEN 'certificate.issued' THEN 'issued' WHEN 'certificate.renewed' THEN 'renewed'
                ELSE 'refused' END, 1)
        ON CONFLICT (day, kind) DO UPDATE SET n = daily_counts.n + 1;
    RETURN NULL;
END
$$;

DROP TRIGGER daily_counts_event ON audit_events;

CREATE TRIGGER daily_counts_event AFTER INSERT ON audit_events
    FOR EACH ROW WHEN ((NEW.type IN ('certificate.issued', 'certificate.renewed')
            AND NEW.profile NOT IN ('scep-ra', 'ocsp-responder', 'tls-server'))
        OR (NEW.type IN ('enrollment.failed', 'request.refused') AND NEW.actor <> 'system'))
    EXECUTE FUNCTION daily_counts_event();

CREATE FUNCTION daily_counts_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_counts (day, kind, n)
        VALUES (NEW.revoked_at / 86400000000, 'revoked', 1)
        ON CONFLICT (day, kind) DO UPDATE SET n = daily_counts.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER daily_counts_revoked AFTER UPDATE OF status ON certificates
    FOR EACH ROW WHEN (NEW.status = 'revoked' AND OLD.status <> 'revoked' AND OLD.unheld_at IS NULL
        AND NEW.profile NOT IN ('scep-ra', 'ocsp-responder', 'tls-server'))
    EXECUTE FUNCTION daily_counts_revoked();

-- The days so far, counted again from the audit trail the same way: a
-- certificate's first certificate.revoked event is its first revocation
-- (every later one is a hold made permanent, a reason raised, or a hold
-- after an unhold). One GROUP BY over the events of these types; the
-- audit rows are only read.
DELETE FROM daily_counts;

INSERT INTO daily_counts (day, kind, n)
    SELECT time / 86400000000,
        CASE type WHEN 'certificate.issued' THEN 'issued' WHEN 'certificate.renewed' THEN 'renewed'
            ELSE 'refused' END, count(*)
    FROM audit_events
    WHERE (type IN ('certificate.issued', 'certificate.renewed')
            AND profile NOT IN ('scep-ra', 'ocsp-responder', 'tls-server'))
        OR (type IN ('enrollment.failed', 'request.refused') AND actor <> 'system')
    GROUP BY 1, 2;

INSERT INTO daily_counts (day, kind, n)
    SELECT first / 86400000000, 'revoked', count(*)
    FROM (SELECT MIN(time) AS first FROM audit_events
          WHERE type = 'certificate.revoked' AND serial_hex <> ''
              AND profile NOT IN ('scep-ra', 'ocsp-responder', 'tls-server')
          GROUP BY issuer_id, serial_hex) AS firsts
    GROUP BY 1;
