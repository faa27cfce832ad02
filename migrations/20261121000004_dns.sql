-- Addresses players can type (DNS). What a server's published records lead to (dns_ip, dns_port), what players
-- type while they do (dns_address: the name alone where an SRV record carries the port, else name:port), and the
-- provider's ids of its host (A/AAAA) and SRV records, so an update is one request per record instead of a
-- search. The address shown is dns_address only while the game runs where the records lead.
-- dns_record, a placeholder of the initial schema, was never used.

ALTER TABLE servers DROP COLUMN dns_record;
ALTER TABLE servers ADD COLUMN dns_ip TEXT;
ALTER TABLE servers ADD COLUMN dns_port BIGINT;
ALTER TABLE servers ADD COLUMN dns_address TEXT;
ALTER TABLE servers ADD COLUMN dns_host_record TEXT;
ALTER TABLE servers ADD COLUMN dns_srv_record TEXT;
