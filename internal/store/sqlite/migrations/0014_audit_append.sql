-- scepter schema version 14 (SQLite): nothing to do. PostgreSQL's 0014
-- adds audit_append, which links an audit event to the chain inside the
-- database, so that an issuance there is one round trip between node and
-- database; SQLite runs in the node's process. The version stays aligned
-- with PostgreSQL's.
SELECT 1;
