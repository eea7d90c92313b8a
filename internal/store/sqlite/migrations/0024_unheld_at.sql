-- scepter schema version 24 (SQLite): when a hold was lifted.
--
-- An OCSP answer or CRL made after a hold is lifted must not be dated
-- before the unhold (RFC 6960 §4.2.2.1, RFC 5280 §5.1.2.4): it would say
-- the certificate was good while it was held, and be older than the
-- "revoked" answer it replaces, which a cache keeping the newest would
-- keep. UnholdCertificate sets both columns in its transaction: the
-- certificate's, read with the row the responder reads anyway, and its
-- issuer's newest, which a CRL reads.
ALTER TABLE certificates ADD COLUMN unheld_at INTEGER;             -- unix microseconds; NULL: never
ALTER TABLE revocation_state ADD COLUMN unheld_at INTEGER NOT NULL DEFAULT 0;

-- Holds lifted before this version have no column to read, but each wrote
-- a certificate.unheld audit event (with the issuer and serial as the
-- certificate has them, and its time in microseconds): the newest of each
-- certificate and of each issuer is its unhold time. A certificate revoked
-- now (held again) has no unhold in force, so it keeps NULL; its issuer's
-- CRL still must not be dated before that unhold. One GROUP BY over the
-- events of that type (index audit_events_type) each; the audit rows are
-- only read. The issuer's row exists: the hold before the unhold made it.
UPDATE certificates SET unheld_at = u.at
    FROM (SELECT issuer_id, serial_hex, MAX(time) AS at FROM audit_events
          WHERE type = 'certificate.unheld' GROUP BY issuer_id, serial_hex) AS u
    WHERE certificates.issuer_id = u.issuer_id AND certificates.serial_hex = u.serial_hex
      AND certificates.status <> 'revoked';
UPDATE revocation_state SET unheld_at = u.at
    FROM (SELECT issuer_id, MAX(time) AS at FROM audit_events
          WHERE type = 'certificate.unheld' GROUP BY issuer_id) AS u
    WHERE revocation_state.issuer_id = u.issuer_id;
