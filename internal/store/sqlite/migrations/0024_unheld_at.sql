-- scepter schema version 24 (SQLite): when a hold was lifted.
--
-- An OCSP answer or CRL made after a hold is lifted must not be dated
-- before the unhold (RFC 6960 §4.2.2.1, RFC 5280 §5.1.2.4): it would say
-- the certificate was good while it was held, and be older than the
-- "revoked" answer it replaces, which a cache keeping the newest would
-- keep. Nothing else recorded the unhold's time. UnholdCertificate sets
-- both columns in its transaction: the certificate's, read with the row
-- the responder reads anyway, and its issuer's newest, which a CRL reads.
ALTER TABLE certificates ADD COLUMN unheld_at INTEGER;             -- unix microseconds; NULL: never
ALTER TABLE revocation_state ADD COLUMN unheld_at INTEGER NOT NULL DEFAULT 0;
