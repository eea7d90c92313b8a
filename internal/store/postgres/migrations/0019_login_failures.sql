-- scepter schema version 19 (PostgreSQL): failed logins of names that are no
-- user's, in the store.
--
-- A user's failed logins are counted in users; those of a name that is no
-- user's were counted in each node's memory, so after a restart, or on
-- another node, a real user was still locked out while a made-up name was
-- not: the lockout told which names are users. They are counted here
-- instead, alike. name_key is a keyed hash (HMAC-SHA-256) of the name,
-- never the name (often a password typed into the wrong field); the key
-- is the one row of login_name_key, made by the first server that needs
-- it. A row is forgotten at expires_at (PurgeExpired deletes it), so the
-- table holds no more names than the rate limiter lets through in that
-- time.
CREATE TABLE login_failures (
    name_key     BYTEA   PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until BIGINT,
    expires_at   BIGINT  NOT NULL
);

CREATE INDEX login_failures_expires ON login_failures (expires_at);

CREATE TABLE login_name_key (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BYTEA   NOT NULL
);

-- A user's failures are forgotten as an unknown name's are: at
-- failures_expire_at, set anew by each counted failure. Without it, a
-- user's count lasted until a success while an unknown name's expired, and
-- a failure after a quiet day told the two apart.
ALTER TABLE users ADD COLUMN failures_expire_at BIGINT;
