-- scepter schema version 31 (SQLite): nothing to do. PostgreSQL's 0031
-- makes audit_append refuse a trail with a record after its head; SQLite
-- appends in the node's process (insertEvents), which does so without a
-- migration. The version stays aligned with PostgreSQL's.
SELECT 1;
