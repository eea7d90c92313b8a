-- scepter schema version 17 (PostgreSQL): a notification's delivery state per
-- recipient.
--
-- A mail goes to several recipients at once. When the mail server takes it
-- for some, refuses it for good to others (5xx) and asks to try again
-- later for the rest (4xx), the retry must go to the rest only: before this
-- version it went to everyone again, and those who had it got a second
-- copy. accepted and refused hold the recipients settled so far, as JSON
-- arrays of the addresses as the sender wrote them ('[]' for none, which
-- is what notifications recorded before this version start with: their
-- next retry goes to every recipient, as it did). Only the lease holder
-- writes them, with the outcome of its attempt.
ALTER TABLE notifications ADD COLUMN accepted TEXT NOT NULL DEFAULT '[]';
ALTER TABLE notifications ADD COLUMN refused TEXT NOT NULL DEFAULT '[]';
