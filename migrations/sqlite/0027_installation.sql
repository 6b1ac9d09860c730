-- The installation's NATS subject prefix (docs/cluster.md, "What travels over NATS"): the first
-- node of a cluster writes it, every later node uses it, so that two installations on one NATS
-- never hear each other's frames, requests, broadcasts or chat journal.
CREATE TABLE installation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    nats_prefix TEXT NOT NULL
);
