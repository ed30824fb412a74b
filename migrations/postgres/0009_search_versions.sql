-- A version per customer of its accounts' listing, bumped in every transaction that adds or
-- removes an account or changes an account's search text, notes, user name (the listing's
-- order) or customer. Servers keep
-- large customers' search texts in memory and use such a copy only while its version is the
-- store's (src/store/mirror.rs): whatever process wrote, the next search sees the change.
-- Registrations (live_until) and balance moves, the frequent writes, do not bump it.
CREATE TABLE search_versions (
    customer_id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    -- The transaction that bumped it last: one bump per transaction, however many rows it
    -- changes (no new row version per changed account).
    bumped_by BIGINT NOT NULL
);

CREATE FUNCTION bump_search_version(c BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO search_versions (customer_id, version, bumped_by)
    VALUES (c, 1, pg_current_xact_id()::text::bigint)
    ON CONFLICT (customer_id) DO UPDATE SET version = search_versions.version + 1,
        bumped_by = EXCLUDED.bumped_by
    WHERE search_versions.bumped_by <> EXCLUDED.bumped_by
$$;

CREATE FUNCTION accounts_search_version_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM bump_search_version(c) FROM (SELECT DISTINCT customer_id AS c FROM new_rows
            WHERE customer_id IS NOT NULL) x;
    ELSE
        PERFORM bump_search_version(c) FROM (SELECT DISTINCT customer_id AS c FROM old_rows
            WHERE customer_id IS NOT NULL) x;
    END IF;
    RETURN NULL;
END $$;

-- Statement triggers with transition tables: a bulk insert bumps once per customer.
CREATE TRIGGER accounts_search_version_insert AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_search_version_rows();
CREATE TRIGGER accounts_search_version_delete AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_search_version_rows();

CREATE FUNCTION accounts_search_version_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.customer_id IS NOT NULL THEN
        PERFORM bump_search_version(OLD.customer_id);
    END IF;
    IF NEW.customer_id IS NOT NULL AND NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
        PERFORM bump_search_version(NEW.customer_id);
    END IF;
    RETURN NULL;
END $$;

-- A row trigger with a WHEN clause: updates that change none of these call nothing.
CREATE TRIGGER accounts_search_version_update AFTER UPDATE ON accounts FOR EACH ROW
    WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text
          OR OLD.username IS DISTINCT FROM NEW.username
          OR OLD.notes IS DISTINCT FROM NEW.notes
          OR OLD.customer_id IS DISTINCT FROM NEW.customer_id)
    EXECUTE FUNCTION accounts_search_version_update();
