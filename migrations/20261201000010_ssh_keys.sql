-- ssh_keys: public keys an account signs in to SFTP with. public_key is the key's OpenSSH text without its
-- comment; fingerprint its SHA-256 fingerprint as `ssh-keygen -l` prints it, unique per account.
CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX ssh_keys_fingerprint ON ssh_keys (user_id, fingerprint);
