-- scepter schema version 12 (PostgreSQL): two certificate indexes fewer.
--
-- Each index a certificate enters is one more WAL record per issuance, and
-- after a checkpoint a full page image. An index on a random key (a serial,
-- a transaction ID) dirties a leaf of its own for each certificate, where
-- the time-ordered indexes share their last page. Two of them did no work:
-- - certificates_transaction: no query reads certificates by transaction
--   ID (a held request is found in enrollment_requests, by its own index);
-- - certificates_serial: the lookup by serial alone (CertificatesBySerial)
--   now searches the (issuer_id, serial_hex) key once per issuer, which a
--   store has a handful of.
-- The same indexes go from SQLite in its 0012.
DROP INDEX certificates_transaction;
DROP INDEX certificates_serial;
