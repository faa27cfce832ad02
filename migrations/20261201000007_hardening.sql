-- The installation this database belongs to: one row, made on first start. Its id is stamped on everything
-- Spawnpoint makes in a cluster or a DNS zone, and only objects carrying it are ever collected, so a Spawnpoint
-- started against another database (or an empty one) leaves this installation's game servers alone.
-- `collect_until`: an operator's `spawnpoint orphans release` lets the reconciler delete more orphans at once than
-- it otherwise would, until then.
CREATE TABLE installation (
    singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    collect_until BIGINT
);

-- A subscription whose price is for another plan than the server's (`<product>/<plan>` as Stripe reported it): the
-- server is treated as unpaid until a subscription for its plan is reported.
ALTER TABLE servers ADD COLUMN price_mismatch TEXT;
