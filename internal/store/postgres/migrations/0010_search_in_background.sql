-- scepter schema version 10 (PostgreSQL): nothing to do. SQLite's 0010
-- fills its trigram search index in the background instead of by a trigger
-- on every insert; PostgreSQL's pg_trgm index is part of the table and is
-- written with each row. The version stays aligned with SQLite's.
SELECT 1;
