-- The core made ready for more.
-- version: bumped by every write to the row, and carried by every event about it, so a live page can drop an
--   event older than what it already shows.
-- dns_error: why the server's DNS records could not be updated (curated for its owner), apart from its status
--   message, so a successful publish clears exactly this and nothing else.
-- status_detail, dns_detail: the outside system's own words behind the status message and the DNS error (a
--   Kubernetes, Stripe or Cloudflare error), for administrators only; customers read the curated messages.
ALTER TABLE servers ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN dns_error TEXT;
ALTER TABLE servers ADD COLUMN dns_detail TEXT;
ALTER TABLE servers ADD COLUMN status_detail TEXT;

-- What earlier versions wrote in the status message: a DNS failure moves to its own column, and a message that
-- may carry an outside system's words becomes detail for administrators (the next pass writes the curated one).
UPDATE servers SET dns_error = 'DNS not updated: the DNS provider refused or did not answer; retrying',
    dns_detail = status_message, status_message = NULL
    WHERE status_message LIKE 'DNS not updated:%';
UPDATE servers SET status_detail = status_message, status_message = NULL
    WHERE status_message IS NOT NULL AND status <> 'expired';
