-- scepter schema version 16 (SQLite): the search index holds subjects
-- without their RFC 4514 escapes.
--
-- A subject is stored as RFC 4514 text, "CN=Doe\, John,O=Acme\, Inc", and
-- the index held it so: a search for "Doe, John", as a person reads and
-- types it, found nothing. The index now holds the text with the escapes
-- of a comma, plus, quote, angle brackets, semicolon, equals sign, number
-- sign, space and backslash removed, and a search term loses them the same
-- way (sqlstore.SearchTerm), so both spellings find the certificate. The
-- expression is sqlstore.SearchText (a test keeps them equal); it costs a
-- few string replacements per certificate, in the background indexer.
--
-- The contentless index cannot be rewritten in place (a row is deleted
-- with the text it was indexed with), so it is built anew: emptied, and
-- its mark set back to 0 for the background indexer (search.go) to fill it
-- again, in batches; a search brings it up to date first, as always.

DROP TRIGGER certificates_search_insert;
DROP TRIGGER certificates_search_delete;
DROP TABLE certificates_search;

CREATE VIRTUAL TABLE certificates_search USING fts5(text, tokenize = 'trigram', content = '');
UPDATE certificates_search_progress SET indexed_upto = 0;

-- As in 0010: a certificate at or below the mark is indexed at once (an
-- id SQLite reused), and only an indexed one is taken out.
CREATE TRIGGER certificates_search_insert AFTER INSERT ON certificates
WHEN new.id <= (SELECT indexed_upto FROM certificates_search_progress) BEGIN
    INSERT INTO certificates_search (rowid, text) VALUES (new.id,
        lower(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(new.subject_dn || ' ' || new.sans || ' ' || new.serial_hex, '\,', ','), '\+', '+'), '\"', '"'), '\<', '<'), '\>', '>'), '\;', ';'), '\=', '='), '\#', '#'), '\ ', ' '), '\\', '\')));
END;

CREATE TRIGGER certificates_search_delete AFTER DELETE ON certificates
WHEN old.id <= (SELECT indexed_upto FROM certificates_search_progress) BEGIN
    INSERT INTO certificates_search (certificates_search, rowid, text) VALUES ('delete', old.id,
        lower(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(old.subject_dn || ' ' || old.sans || ' ' || old.serial_hex, '\,', ','), '\+', '+'), '\"', '"'), '\<', '<'), '\>', '>'), '\;', ';'), '\=', '='), '\#', '#'), '\ ', ' '), '\\', '\')));
END;
