-- scepter schema version 16 (PostgreSQL): the search index holds subjects
-- without their RFC 4514 escapes.
--
-- A subject is stored as RFC 4514 text, "CN=Doe\, John,O=Acme\, Inc", and
-- the index held it so: a search for "Doe, John", as a person reads and
-- types it, found nothing. The trigram index is now on the text with the
-- escapes of a comma, plus, quote, angle brackets, semicolon, equals sign,
-- number sign, space and backslash removed, and a search term loses them
-- the same way (sqlstore.SearchTerm), so both spellings find the
-- certificate. The expression is sqlstore.SearchText, which the store's
-- queries spell exactly (the planner matches it; a test keeps them equal);
-- it costs a few string replacements per certificate inserted.
--
-- During a rolling upgrade a node of the previous version still searches
-- on the old expression: its searches find the same certificates as
-- before, without an index, until it is upgraded.
DROP INDEX certificates_search;

CREATE INDEX certificates_search ON certificates
    USING gin (lower(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(subject_dn || ' ' || sans || ' ' || serial_hex, '\,', ','), '\+', '+'), '\"', '"'), '\<', '<'), '\>', '>'), '\;', ';'), '\=', '='), '\#', '#'), '\ ', ' '), '\\', '\')) gin_trgm_ops);
