-- scepter schema version 22 (PostgreSQL): a key's certificates by transaction.
--
-- Every SCEP enrollment at a static or webhook profile looks up the
-- certificates of its key issued for its transaction ID (a resend whose
-- answer was lost is answered with its certificate). On version 21's
-- index of key_hash alone, that read every certificate of the key and
-- filtered them: a key enrolled a thousand times (a fleet sharing a key,
-- a load test, or a requester with the static challenge enrolling one key
-- over and over) made each of its enrollments read a thousand rows. The
-- key's transaction narrows it to the resends; the keyCompromise sweep
-- still searches the key alone, by the index's first column.
DROP INDEX certificates_key_hash;
CREATE INDEX certificates_key_hash ON certificates (key_hash, transaction_id);
