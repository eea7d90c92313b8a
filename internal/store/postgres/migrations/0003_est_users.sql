-- scepter schema version 3 (PostgreSQL): EST users.
--
-- Same conventions as 0001: times are BIGINT microseconds since the Unix
-- epoch, optional text is '' rather than NULL.

-- Accounts that authenticate EST requests with HTTP Basic. Only an argon2id
-- hash of the password is kept (PHC string format).
CREATE TABLE est_users (
    name          TEXT   PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    profile       TEXT   NOT NULL DEFAULT '', -- '' : any profile
    created_at    BIGINT NOT NULL,
    created_by    TEXT   NOT NULL DEFAULT ''
);
