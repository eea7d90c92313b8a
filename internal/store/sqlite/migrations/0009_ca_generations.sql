-- scepter schema version 9 (SQLite): the CA shared by every node on the
-- store. Same conventions as 0001: times are INTEGER microseconds since the
-- Unix epoch (NULL: unset), STRICT.

-- One row per issuing CA generation. The store holds the certificates and
-- the schedule (switch_at: when it becomes current, 0 for the first); the
-- keys stay in each node's data directory or in a shared HSM. promoted_at
-- is set once, by the one node whose conditional UPDATE wins, when the
-- switch time has come.
CREATE TABLE ca_generations (
    issuer_id        TEXT    NOT NULL PRIMARY KEY,
    root_fingerprint TEXT    NOT NULL,
    issuer_der       BLOB    NOT NULL,
    ra_der           BLOB,
    switch_at        INTEGER NOT NULL,
    published_at     INTEGER NOT NULL,
    published_by     TEXT    NOT NULL DEFAULT '',
    promoted_at      INTEGER
) STRICT, WITHOUT ROWID;
