-- scepter schema version 18 (PostgreSQL): leases a clock set back left behind.
--
-- A lease (claimed_until) or a retry time (next_attempt_at) taken while the
-- clock was ahead held the notification back by as much as the clock was
-- ahead once it was set back. ClaimNotifications now ends a lease further
-- ahead than one can reach at now + lease, and makes a retry time further
-- ahead than the longest backoff due now. This index makes the first a
-- range read of the few rows that hold a lease (finished ones hold none);
-- the second reads notifications_due.
CREATE INDEX notifications_leased ON notifications (claimed_until) WHERE claimed_until IS NOT NULL;
