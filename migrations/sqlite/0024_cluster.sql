-- Several nodes (issue 16): the node a live session's actor runs on, and the nodes alive.
-- NULL home: a session of a broker running as one node.
ALTER TABLE sessions ADD COLUMN home_node TEXT;
-- The node a device's agent is connected to (a cluster only; NULL: not connected anywhere).
ALTER TABLE devices ADD COLUMN agent_node TEXT;

-- Each node of a cluster writes its row at start and renews `seen_at` every few seconds; a
-- node not seen for a while is dead, and its sessions are ended by the others.
CREATE TABLE nodes (
    id         TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    seen_at    TEXT NOT NULL
);
