-- scepter schema version 27 (PostgreSQL): held requests are keyed by their key
-- too; the same columns and index as SQLite's 0027.
--
-- Transaction IDs are no secret (clients derive them from the public key):
-- keyed by (profile, transaction ID) alone, a request of any key holding
-- an ID blocked the device whose ID it is, even once rejected. A
-- transaction is the pair of its ID and the requester's key, as the replay
-- cache and claims have it: key_hash is store.RequestKeyHash of the CSR,
-- client_key_hash store.CertKeyHash of the certificate that authenticated
-- a renewal (NULL for none). One pending request per (profile, transaction
-- ID, key); another key's is another transaction.
--
-- Requests held before this version keep NULL hashes: RequestByTransaction
-- reads them with the others of their ID and matches them by their CSR
-- and certificate in Go; they are few and are purged at their retention's
-- end. A node of the previous version, still running while this one
-- migrates, writes NULL too, which the unique index lets through.
ALTER TABLE enrollment_requests ADD COLUMN key_hash BYTEA;
ALTER TABLE enrollment_requests ADD COLUMN client_key_hash BYTEA;
DROP INDEX enrollment_requests_one_pending;
CREATE UNIQUE INDEX enrollment_requests_one_pending
    ON enrollment_requests (profile, transaction_id, key_hash) WHERE status = 'pending';
