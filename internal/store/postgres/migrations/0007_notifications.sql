-- scepter schema version 7 (PostgreSQL): expiry notifications.
--
-- Same conventions as 0001: times are BIGINT microseconds since the Unix
-- epoch (NULL: unset), optional text is '' rather than NULL.

-- One row per certificate, threshold and channel: the intent to tell
-- someone that the certificate is about to cross (or has crossed) that
-- threshold before its not_after, and what became of it. The primary key
-- makes recording an intent insert-if-absent, so schedulers on several
-- nodes (or one restarted) record it once; the lease (claimed_by,
-- claimed_until) lets one of them send it, and another take it over once
-- the lease has run out (the first died mid-send). Claims pick the due rows
-- with SELECT … FOR UPDATE SKIP LOCKED, so claimers on several nodes never
-- wait for each other nor take the same row.
CREATE TABLE notifications (
    issuer_id       TEXT    NOT NULL,
    serial_hex      TEXT    NOT NULL,
    threshold       BIGINT  NOT NULL,            -- microseconds before not_after
    channel         TEXT    NOT NULL,            -- smtp | webhook
    status          TEXT    NOT NULL,            -- pending | sent | skipped | failed | cancelled
    attempts        INTEGER NOT NULL DEFAULT 0,  -- sends tried
    next_attempt_at BIGINT  NOT NULL,            -- when a pending one is due
    claimed_until   BIGINT,                      -- lease end; NULL when free
    claimed_by      TEXT    NOT NULL DEFAULT '', -- lease holder
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT,
    PRIMARY KEY (issuer_id, serial_hex, threshold, channel)
);

-- ClaimNotifications: the pending ones that are due, earliest first, an
-- index range read that stops at LIMIT however many were sent before.
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);

-- "Is this certificate renewed?": another certificate names it
-- ("issuerID:serialHex") in renewed_from. The candidates of a scan
-- (valid, not_after in a window) are a range of certificates_status_expiry.
CREATE INDEX certificates_renewed_from ON certificates (renewed_from);
