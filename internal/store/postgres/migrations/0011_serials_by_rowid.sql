-- scepter schema version 11 (PostgreSQL): nothing to do. SQLite's 0011
-- turns its serial registry from a WITHOUT ROWID table, whose large rows
-- split random leaves on every reservation, into a rowid table; a
-- PostgreSQL table is a heap with its key in a separate index already. The
-- version stays aligned with SQLite's.
SELECT 1;
