-- scepter schema version 13 (PostgreSQL): certificates_renewed_from holds
-- renewals only.
--
-- renewed_from is "issuerID:serialHex" for a renewal and '' for every other
-- certificate, and only the renewals are ever looked up (RenewalsOf, and
-- "is this certificate renewed?" in the expiry scan and the notifier). The
-- full index gave every new enrollment an entry under '': one more index
-- changed per issuance, one more WAL record, and a page image after each
-- checkpoint. The queries say renewed_from <> '' so that the planner may
-- use the partial index. The same index changes in SQLite's 0013.
DROP INDEX certificates_renewed_from;
CREATE INDEX certificates_renewed_from ON certificates (renewed_from) WHERE renewed_from <> '';
