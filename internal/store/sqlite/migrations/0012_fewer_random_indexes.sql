-- scepter schema version 12 (SQLite): two certificate indexes fewer.
--
-- Every commit writes a log page for each B-tree leaf it changed. An index
-- on a random key (a serial, a transaction ID) changes a leaf of its own for
-- each certificate, where the time-ordered indexes share their last page
-- among the certificates of a commit. Of the few such indexes, two did no
-- work:
-- - certificates_transaction: no query reads certificates by transaction
--   ID (a held request is found in enrollment_requests, by its own index);
-- - certificates_serial: the lookup by serial alone (CertificatesBySerial)
--   now searches the (issuer_id, serial_hex) key once per issuer, which a
--   store has a handful of.
-- Together one to two log pages per enrollment (with their splits), a
-- tenth or more of the log.
DROP INDEX certificates_transaction;
DROP INDEX certificates_serial;
