-- Real games on the single box.
--
-- Two new states: `installing` (the game's files are being installed) and `install_failed`. The status column's
-- CHECK lists the states, and neither engine alters a CHECK in place, so the column is replaced: a column's own
-- CHECK goes with it when it is dropped, on SQLite (3.35+) as on PostgreSQL.
ALTER TABLE servers ADD COLUMN status_new TEXT NOT NULL DEFAULT 'pending' CHECK (status_new IN
    ('awaiting_payment', 'pending', 'running', 'stopped', 'expired', 'deleted', 'failed', 'installing',
     'install_failed'));
UPDATE servers SET status_new = status;
DROP INDEX servers_status;
ALTER TABLE servers DROP COLUMN status;
ALTER TABLE servers RENAME COLUMN status_new TO status;
CREATE INDEX servers_status ON servers (status);

-- variables: the server's startup variables as a JSON object of strings (every variable of its game).
-- eula_accepted: when its owner accepted the game's licence in the create form (Unix seconds), if they did.
-- install_generation: bumped by "reinstall"; the game's files are installed again when it changes.
-- install_step, install_done, install_total: the install step running now and its progress in bytes, while the
-- server is installing.
ALTER TABLE servers ADD COLUMN variables TEXT NOT NULL DEFAULT '{}';
ALTER TABLE servers ADD COLUMN eula_accepted BIGINT;
ALTER TABLE servers ADD COLUMN install_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN install_step TEXT;
ALTER TABLE servers ADD COLUMN install_done BIGINT;
ALTER TABLE servers ADD COLUMN install_total BIGINT;
