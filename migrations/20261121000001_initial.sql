-- The initial schema. Written in the SQL that both SQLite and PostgreSQL accept, because one binary runs on
-- either. Times are Unix seconds (BIGINT): portable across both engines and through sqlx's Any driver.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    email              TEXT NOT NULL UNIQUE,
    password_hash      TEXT NOT NULL,
    stripe_customer_id TEXT,
    role               TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    created_at         BIGINT NOT NULL
);

CREATE TABLE servers (
    id                     TEXT PRIMARY KEY,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                   TEXT NOT NULL,
    game                   TEXT NOT NULL,
    plan                   TEXT NOT NULL,
    status                 TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                               ('awaiting_payment', 'pending', 'running', 'stopped', 'expired', 'deleted', 'failed')),
    status_message         TEXT,
    dns_record             TEXT,
    node_ip                TEXT,
    port                   BIGINT,
    stripe_subscription_id TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    stopped_at             BIGINT,
    expired_at             BIGINT,
    delete_after           BIGINT
);

CREATE INDEX servers_user_id ON servers (user_id);
CREATE INDEX servers_status ON servers (status);
CREATE INDEX servers_delete_after ON servers (delete_after);

CREATE TABLE subscriptions (
    id                     TEXT PRIMARY KEY,
    server_id              TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    stripe_subscription_id TEXT NOT NULL UNIQUE,
    status                 TEXT NOT NULL,
    current_period_end     BIGINT,
    created_at             BIGINT NOT NULL
);

CREATE INDEX subscriptions_server_id ON subscriptions (server_id);
