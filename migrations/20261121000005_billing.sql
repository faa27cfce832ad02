-- Stripe billing: a subscription per server.
--
-- The subscription's facts live on its server's row (one subscription per server, for the server's life), so the
-- reconciler and the pages read one row. The `subscriptions` table of the initial schema, never used, goes.
--
-- stripe_subscription_id (initial schema): the server's subscription, once paid for.
-- checkout_session_id, checkout_url: the Checkout Session that takes the first payment, while it is awaited.
-- subscription_status, current_period_end: the subscription as Stripe last described it (the billing page).
-- billing_event_at: `created` of the last Stripe event applied, so that an older event arriving late never rolls
-- the server back. subscription_ended_at: when Spawnpoint cancelled the subscription (or its checkout) at Stripe,
-- which a deleted server's clean-up does before anything else.
-- delete_after (initial schema): when an unpaid or expired server is deleted.

DROP TABLE subscriptions;
ALTER TABLE servers ADD COLUMN checkout_session_id TEXT;
ALTER TABLE servers ADD COLUMN checkout_url TEXT;
ALTER TABLE servers ADD COLUMN subscription_status TEXT;
ALTER TABLE servers ADD COLUMN current_period_end BIGINT;
ALTER TABLE servers ADD COLUMN billing_event_at BIGINT;
ALTER TABLE servers ADD COLUMN subscription_ended_at BIGINT;

CREATE INDEX servers_stripe_subscription_id ON servers (stripe_subscription_id);

-- Stripe events already handled, by id: a redelivery changes nothing.
CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    created     BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
