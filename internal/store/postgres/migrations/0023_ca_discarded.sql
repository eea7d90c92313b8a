-- scepter schema version 23 (PostgreSQL): discarded CA generations; the
-- same table as SQLite's 0023.
--
-- `scepter ca rollover --discard` removes a next issuing CA from
-- ca_generations and may destroy its keys (in a shared token). A node that
-- still held a copy of it in DATA/ca/next recorded it again, and switched
-- every node to a CA whose keys were gone. The discard is kept here, in
-- its transaction, and a generation listed here is never recorded again.
-- A new table only: nodes of the previous version, still running while
-- this one migrates, neither read nor miss it.
CREATE TABLE ca_discarded (
    issuer_id    TEXT   NOT NULL PRIMARY KEY,
    discarded_at BIGINT NOT NULL,               -- unix microseconds
    discarded_by TEXT   NOT NULL DEFAULT ''
);
