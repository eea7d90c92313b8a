-- scepter schema version 11 (SQLite): the serial registry as a rowid table.
--
-- serials was WITHOUT ROWID, keyed by (issuer_id, serial_hex): its rows,
-- with the TBSCertificate added in 0005 (most of a kilobyte), lived in the
-- key's B-tree. Serials are random, so every reservation went to a random
-- leaf that held three or four rows and split often: about four log pages
-- per enrollment, the most of any table. As a rowid table the rows are
-- appended, sharing pages with the other reservations of a commit, and the
-- key's index holds only the key, about seventy to a page.
CREATE TABLE serials_by_rowid (
    id          INTEGER PRIMARY KEY,
    issuer_id   TEXT    NOT NULL,
    serial_hex  TEXT    NOT NULL,
    reserved_at INTEGER NOT NULL,
    tbs         BLOB,
    UNIQUE (issuer_id, serial_hex)
) STRICT;

-- In key order, as stored: no sort, which on a large registry would need
-- memory for all of it (the writer keeps temporary data in memory).
INSERT INTO serials_by_rowid (issuer_id, serial_hex, reserved_at, tbs)
    SELECT issuer_id, serial_hex, reserved_at, tbs FROM serials;

DROP TABLE serials;
ALTER TABLE serials_by_rowid RENAME TO serials;
