-- scepter schema version 10 (SQLite): the trigram search index filled in
-- the background.
--
-- The trigram search index is filled in the background (search.go), many
-- certificates per transaction, instead of by a trigger on every insert: a
-- per-row trigger made FTS5 write a segment of its own for every
-- certificate, a sixth of the log pages an enrollment wrote. A search first
-- brings the index up to date, so it sees every certificate committed
-- before it started.
--
-- certificates_search_progress.indexed_upto is the highest certificate id
-- in the index; every certificate at or below it is indexed.

CREATE TABLE certificates_search_progress (
    one          INTEGER PRIMARY KEY CHECK (one = 1),
    indexed_upto INTEGER NOT NULL
) STRICT;

-- The old trigger indexed every certificate there is.
INSERT INTO certificates_search_progress (one, indexed_upto)
    VALUES (1, COALESCE((SELECT MAX(id) FROM certificates), 0));

DROP TRIGGER certificates_search_insert;
DROP TRIGGER certificates_search_delete;

-- A new certificate at or below the mark is indexed at once. That happens
-- only when SQLite reuses the id of a deleted highest row (ids are
-- MAX(id) + 1); without it that certificate would never be indexed.
CREATE TRIGGER certificates_search_insert AFTER INSERT ON certificates
WHEN new.id <= (SELECT indexed_upto FROM certificates_search_progress) BEGIN
    INSERT INTO certificates_search (rowid, text) VALUES (new.id, lower(new.subject_dn || ' ' || new.sans || ' ' || new.serial_hex));
END;

-- Only an indexed certificate is taken out: a contentless FTS5 table is
-- corrupted by deleting what it never held.
CREATE TRIGGER certificates_search_delete AFTER DELETE ON certificates
WHEN old.id <= (SELECT indexed_upto FROM certificates_search_progress) BEGIN
    INSERT INTO certificates_search (certificates_search, rowid, text)
        VALUES ('delete', old.id, lower(old.subject_dn || ' ' || old.sans || ' ' || old.serial_hex));
END;
