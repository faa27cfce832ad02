-- Files and backups.
--
-- file_versions: what a file held before it was saved from the browser (the last few per file, text only).
CREATE TABLE file_versions (
    id        TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    saved_at  BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    content   TEXT NOT NULL
);
CREATE INDEX file_versions_path ON file_versions (server_id, path, saved_at);

-- backups: one archive of a server's files in the backup store, under `object_key`. status: pending while it is
-- taken; ok once the whole archive is stored with its size and sha256; failed with the reason in error. A backup
-- whose row is gone has no object (the store is cleaned before the row goes). restoring: Unix seconds since a
-- restore from it began, while one runs; restore_error: why the last restore from it failed.
CREATE TABLE backups (
    id              TEXT PRIMARY KEY,
    server_id       TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'failed')),
    object_key      TEXT NOT NULL,
    size            BIGINT,
    sha256          TEXT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    duration_ms     BIGINT,
    locked          BIGINT NOT NULL DEFAULT 0,
    ignore_patterns TEXT NOT NULL DEFAULT '',
    schedule_id     TEXT,
    restoring       BIGINT,
    restore_error   TEXT
);
CREATE INDEX backups_server ON backups (server_id, created_at);
-- One backup taken and one restore at a time per server, however many requests race for it.
CREATE UNIQUE INDEX backups_one_pending ON backups (server_id) WHERE status = 'pending';
CREATE UNIQUE INDEX backups_one_restore ON backups (server_id) WHERE restoring IS NOT NULL;

-- schedules: a server's cron schedule (read in `timezone`) and its tasks (a JSON array of {action, …,
-- offset_s}); retention (JSON {keep_last, keep_daily, keep_weekly}) rotates the backups it takes. next_run_at is
-- when it fires next; a runner claims a run by moving it on, so no two runners take the same one. running: Unix
-- seconds since its run began, while one runs.
CREATE TABLE schedules (
    id               TEXT PRIMARY KEY,
    server_id        TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    cron             TEXT NOT NULL,
    timezone         TEXT NOT NULL,
    enabled          BIGINT NOT NULL DEFAULT 1,
    only_when_online BIGINT NOT NULL DEFAULT 0,
    tasks            TEXT NOT NULL,
    retention        TEXT NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL,
    last_run_at      BIGINT,
    next_run_at      BIGINT,
    last_result      TEXT,
    running          BIGINT
);
CREATE INDEX schedules_due ON schedules (next_run_at);
