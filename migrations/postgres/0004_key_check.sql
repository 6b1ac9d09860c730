-- A known text sealed with the installation's secret.key (the first start writes it): a node
-- started with another key finds it cannot open it, and says so (docs/cluster.md).
CREATE TABLE key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
