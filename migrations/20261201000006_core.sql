-- The core made ready for more.
-- version: bumped by every write to the row, and carried by every event about it, so a live page can drop an
--   event older than what it already shows.
-- dns_error: why the server's DNS records could not be updated (curated for its owner), apart from its status
--   message, so a successful publish clears exactly this and nothing else.
-- status_detail: the outside system's own words behind the status message (a Kubernetes or Stripe error), for
--   administrators only; customers read the curated message.
ALTER TABLE servers ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN dns_error TEXT;
ALTER TABLE servers ADD COLUMN status_detail TEXT;
