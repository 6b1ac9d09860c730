-- The version of what a node says over NATS (src/cluster.rs, WIRE): a node of another version
-- is refused at start while nodes of this one run (docs/cluster.md, "Upgrading a cluster").
-- NULL: a node from before wire versions.
ALTER TABLE nodes ADD COLUMN wire INTEGER;
