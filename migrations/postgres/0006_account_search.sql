-- The substring search of the /sip listing (`filter`): `search_text` holds the name, user
-- name, IP address and ENUM numbers, lower-cased, one per line (a filter holds no line break,
-- so no match spans two of them), kept current by triggers whatever writes the rows (server,
-- CLI, imports). With pg_trgm, trigram GIN indexes serve `LIKE '%…%'` on it and on the notes;
-- without the extension (not installed on the server) the search scans instead.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): the /sip filter will scan instead of using an index', SQLERRM;
END
$$;

ALTER TABLE accounts ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

UPDATE accounts a SET search_text = lower(concat_ws(E'\n', a.name, a.username, a.ip_address,
    (SELECT string_agg(e.number, E'\n') FROM enum_numbers e WHERE e.account_id = a.id)));

CREATE FUNCTION accounts_search_text() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_text := lower(concat_ws(E'\n', NEW.name, NEW.username, NEW.ip_address,
        (SELECT string_agg(e.number, E'\n') FROM enum_numbers e WHERE e.account_id = NEW.id)));
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_search_text BEFORE INSERT OR UPDATE OF name, username, ip_address
    ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_search_text();

-- ENUM numbers: the text of the account they (were) mapped to is computed again.
CREATE FUNCTION enum_numbers_search_text() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE accounts a SET search_text = lower(concat_ws(E'\n', a.name, a.username,
            a.ip_address,
            (SELECT string_agg(e.number, E'\n') FROM enum_numbers e WHERE e.account_id = a.id)))
        WHERE a.id = OLD.account_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE accounts a SET search_text = lower(concat_ws(E'\n', a.name, a.username,
            a.ip_address,
            (SELECT string_agg(e.number, E'\n') FROM enum_numbers e WHERE e.account_id = a.id)))
        WHERE a.id = NEW.account_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER enum_numbers_search_text AFTER INSERT OR UPDATE OR DELETE ON enum_numbers
    FOR EACH ROW EXECUTE FUNCTION enum_numbers_search_text();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX accounts_search_trgm ON accounts USING gin (search_text gin_trgm_ops)';
        EXECUTE 'CREATE INDEX accounts_notes_trgm ON accounts USING gin (lower(notes) gin_trgm_ops)';
    END IF;
END
$$;

-- Listings sort by user name in byte order (COLLATE "C", as the store's ORDER BY), then id.
CREATE INDEX accounts_customer_username_c ON accounts (customer_id, username COLLATE "C", id);
