-- scepter schema version 23 (SQLite): discarded CA generations.
--
-- `scepter ca rollover --discard` removes a next issuing CA from
-- ca_generations and may destroy its keys (in a shared token). A node that
-- still held a copy of it in DATA/ca/next recorded it again, and switched
-- every node to a CA whose keys were gone. The discard is kept here, in
-- its transaction, and a generation listed here is never recorded again.
CREATE TABLE ca_discarded (
    issuer_id    TEXT    NOT NULL PRIMARY KEY,
    discarded_at INTEGER NOT NULL,              -- unix microseconds
    discarded_by TEXT    NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;
