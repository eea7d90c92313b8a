-- scepter schema version 24 (PostgreSQL): when a hold was lifted; the
-- same columns as SQLite's 0024.
--
-- An OCSP answer or CRL made after a hold is lifted must not be dated
-- before the unhold (RFC 6960 §4.2.2.1, RFC 5280 §5.1.2.4): it would say
-- the certificate was good while it was held, and be older than the
-- "revoked" answer it replaces, which a cache keeping the newest would
-- keep. UnholdCertificate sets both columns in its transaction: the
-- certificate's, read with the row the responder reads anyway, and its
-- issuer's newest, which a CRL reads.
-- Nullable or defaulted columns only: nodes of the previous version, still
-- running while this one migrates, neither write nor miss them.
ALTER TABLE certificates ADD COLUMN unheld_at BIGINT;              -- unix microseconds; NULL: never
ALTER TABLE revocation_state ADD COLUMN unheld_at BIGINT NOT NULL DEFAULT 0;

-- Holds lifted before this version: backfilled from their
-- certificate.unheld audit events, as SQLite's 0024 says. Issuer IDs and
-- serials are hex, which the audit trail stores as given (encText leaves
-- it alone), so they match the certificates' exactly.
UPDATE certificates SET unheld_at = u.at
    FROM (SELECT issuer_id, serial_hex, MAX(time) AS at FROM audit_events
          WHERE type = 'certificate.unheld' GROUP BY issuer_id, serial_hex) AS u
    WHERE certificates.issuer_id = u.issuer_id AND certificates.serial_hex = u.serial_hex
      AND certificates.status <> 'revoked';
UPDATE revocation_state SET unheld_at = u.at
    FROM (SELECT issuer_id, MAX(time) AS at FROM audit_events
          WHERE type = 'certificate.unheld' GROUP BY issuer_id) AS u
    WHERE revocation_state.issuer_id = u.issuer_id;
