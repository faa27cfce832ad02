-- What the reconciler needs from a server's row.
--
-- generation: bumped by every user restart. A game server is started for one generation; one that runs an
-- older generation is replaced, which is how a restart reaches it without the reconciler keeping notes.
-- (node_ip, port): where players connect. On the single box Spawnpoint allocates the port and no two servers
-- may share one; on a cluster several nodes can hand out the same host port, so the pair is what is unique.
-- Both engines let rows with a NULL in the pair coexist.

ALTER TABLE servers ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX servers_node_port ON servers (node_ip, port);
