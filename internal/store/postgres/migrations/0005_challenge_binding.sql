-- scepter schema version 5 (PostgreSQL): challenges bound to an identity and
-- locked after misuse; the TBS of every reserved serial.
--
-- A one-time challenge may be bound to the subject and SANs it is for
-- (bound_subject: DER Name, NULL when unbound; bound_sans: JSON array of
-- "dns:…"/"email:…"). Presented for another profile or identity it is
-- refused, not consumed, and counted; after a few such uses it is locked.
ALTER TABLE challenges ADD COLUMN bound_subject BYTEA;
ALTER TABLE challenges ADD COLUMN bound_sans TEXT NOT NULL DEFAULT '[]';
ALTER TABLE challenges ADD COLUMN failed_uses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN locked_at BIGINT;

-- The linted TBSCertificate the CA key is about to sign with a reserved
-- serial: a certificate signed but never recorded (a lost race, a crash)
-- is still known to the store, byte for byte but for the signature.
ALTER TABLE serials ADD COLUMN tbs BYTEA;
