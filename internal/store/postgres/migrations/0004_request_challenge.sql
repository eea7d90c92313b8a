-- scepter schema version 4 (PostgreSQL): the challenge that authenticated a
-- held request.
--
-- A client asking again about its held request must authenticate again; a
-- one-time challenge was consumed when the request was held, so its hash is
-- kept with the request, and the same challenge still counts for that
-- request alone. NULL: the request was not authenticated by a challenge.
ALTER TABLE enrollment_requests ADD COLUMN challenge_hash BYTEA;
