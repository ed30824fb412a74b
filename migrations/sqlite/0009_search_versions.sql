-- A version per customer of its accounts' listing, bumped whenever an account is added or removed
-- or its search text, notes, user name (the listing's order) or customer changes. Servers keep
-- large customers' search texts in memory and use such a copy only while its version is the
-- store's (src/store/mirror.rs): whatever process wrote (the CLI too), the next search sees the
-- change. Registrations (live_until) and balance moves, the frequent writes, do not bump it.
-- `bumped_by` is PostgreSQL's (one bump per transaction there); SQLite bumps per row.
CREATE TABLE search_versions (
    customer_id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    bumped_by INTEGER NOT NULL
);

CREATE TRIGGER accounts_search_version_insert AFTER INSERT ON accounts
WHEN NEW.customer_id IS NOT NULL
BEGIN
    INSERT INTO search_versions (customer_id, version, bumped_by) VALUES (NEW.customer_id, 1, 0)
        ON CONFLICT (customer_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER accounts_search_version_delete AFTER DELETE ON accounts
WHEN OLD.customer_id IS NOT NULL
BEGIN
    INSERT INTO search_versions (customer_id, version, bumped_by) VALUES (OLD.customer_id, 1, 0)
        ON CONFLICT (customer_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER accounts_search_version_update AFTER UPDATE ON accounts
WHEN OLD.search_text IS NOT NEW.search_text OR OLD.username IS NOT NEW.username
    OR OLD.notes IS NOT NEW.notes OR OLD.customer_id IS NOT NEW.customer_id
BEGIN
    INSERT INTO search_versions (customer_id, version, bumped_by)
        SELECT c, 1, 0 FROM (SELECT OLD.customer_id AS c UNION SELECT NEW.customer_id) WHERE c IS NOT NULL
        ON CONFLICT (customer_id) DO UPDATE SET version = version + 1;
END;
