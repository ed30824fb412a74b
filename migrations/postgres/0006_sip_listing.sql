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


-- `up=` of the /sip listing: the latest expiry of the account's registrations (0: none), kept
-- by a trigger, so "live" (some registration expires after now) is `live_until > now` and an
-- index range per customer instead of a registrations probe per account. Ingestion handles
-- registrations in account order, so these row locks follow the same global order.
ALTER TABLE accounts ADD COLUMN live_until BIGINT NOT NULL DEFAULT 0;
UPDATE accounts a SET live_until = coalesce((SELECT max(r.expires_at) FROM registrations r
                                             WHERE r.account_id = a.id), 0);
CREATE INDEX accounts_customer_live ON accounts (customer_id, live_until);

-- Listings sort by user name in byte order (COLLATE "C", as the store's ORDER BY), then id;
-- with `live_until` in the index a page of `up=` is read from the index alone. It replaces
-- the index of migration 0005, which the "C" order cannot use.
DROP INDEX accounts_customer_username;
CREATE INDEX accounts_customer_username_c ON accounts (customer_id, username COLLATE "C", id)
    INCLUDE (live_until);

CREATE FUNCTION registrations_live_until() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE accounts SET live_until = NEW.expires_at
        WHERE id = NEW.account_id AND live_until < NEW.expires_at;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- A refresh that extends the expiry (the common case) needs no look at the others.
        IF NEW.account_id = OLD.account_id AND NEW.expires_at >= OLD.expires_at THEN
            UPDATE accounts SET live_until = NEW.expires_at
            WHERE id = NEW.account_id AND live_until < NEW.expires_at;
            RETURN NULL;
        END IF;
    END IF;
    -- A shorter expiry, a move or a removal: the newest expiry left, written only when it
    -- changes.
    UPDATE accounts a
    SET live_until = coalesce((SELECT max(r.expires_at) FROM registrations r
                               WHERE r.account_id = a.id), 0)
    WHERE a.id = OLD.account_id
      AND a.live_until <> coalesce((SELECT max(r.expires_at) FROM registrations r
                                    WHERE r.account_id = a.id), 0);
    IF TG_OP = 'UPDATE' AND NEW.account_id <> OLD.account_id THEN
        UPDATE accounts a
        SET live_until = coalesce((SELECT max(r.expires_at) FROM registrations r
                                   WHERE r.account_id = a.id), 0)
        WHERE a.id = NEW.account_id
          AND a.live_until <> coalesce((SELECT max(r.expires_at) FROM registrations r
                                        WHERE r.account_id = a.id), 0);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER registrations_live_until AFTER INSERT OR UPDATE OF expires_at, account_id OR DELETE
    ON registrations FOR EACH ROW EXECUTE FUNCTION registrations_live_until();
