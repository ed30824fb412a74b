-- The substring search of the /sip listing (`filter`): a trigram full-text index over what it
-- searches, kept current by triggers whatever writes the rows (server, CLI, imports).
-- `body`: the name, user name, IP address and ENUM numbers, lower-cased, one per line (a
-- filter holds no line break, so no match spans two of them); `notes` apart, because only
-- some operator roles may search them. The row id is the account id.
CREATE VIRTUAL TABLE account_search USING fts5(body, notes, tokenize = 'trigram');

INSERT INTO account_search (rowid, body, notes)
SELECT a.id,
       lower(coalesce(a.name, '') || char(10) || a.username || char(10) ||
             coalesce(a.ip_address, '') || char(10) ||
             coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                       WHERE e.account_id = a.id), '')),
       lower(coalesce(a.notes, ''))
FROM accounts a;

CREATE TRIGGER account_search_insert AFTER INSERT ON accounts BEGIN
    INSERT INTO account_search (rowid, body, notes)
    VALUES (NEW.id,
            lower(coalesce(NEW.name, '') || char(10) || NEW.username || char(10) ||
                  coalesce(NEW.ip_address, '') || char(10) ||
                  coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                            WHERE e.account_id = NEW.id), '')),
            lower(coalesce(NEW.notes, '')));
END;

CREATE TRIGGER account_search_update AFTER UPDATE OF name, username, ip_address, notes ON accounts
BEGIN
    UPDATE account_search
    SET body = lower(coalesce(NEW.name, '') || char(10) || NEW.username || char(10) ||
                     coalesce(NEW.ip_address, '') || char(10) ||
                     coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                               WHERE e.account_id = NEW.id), '')),
        notes = lower(coalesce(NEW.notes, ''))
    WHERE rowid = NEW.id;
END;

CREATE TRIGGER account_search_delete AFTER DELETE ON accounts BEGIN
    DELETE FROM account_search WHERE rowid = OLD.id;
END;

-- ENUM numbers: the body of the account they (were) mapped to is computed again.
CREATE TRIGGER account_search_enum_insert AFTER INSERT ON enum_numbers BEGIN
    UPDATE account_search
    SET body = (SELECT lower(coalesce(a.name, '') || char(10) || a.username || char(10) ||
                             coalesce(a.ip_address, '') || char(10) ||
                             coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                                       WHERE e.account_id = a.id), ''))
                FROM accounts a WHERE a.id = NEW.account_id)
    WHERE rowid = NEW.account_id;
END;

CREATE TRIGGER account_search_enum_delete AFTER DELETE ON enum_numbers BEGIN
    UPDATE account_search
    SET body = (SELECT lower(coalesce(a.name, '') || char(10) || a.username || char(10) ||
                             coalesce(a.ip_address, '') || char(10) ||
                             coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                                       WHERE e.account_id = a.id), ''))
                FROM accounts a WHERE a.id = OLD.account_id)
    WHERE rowid = OLD.account_id;
END;

CREATE TRIGGER account_search_enum_update AFTER UPDATE OF account_id, number ON enum_numbers
BEGIN
    UPDATE account_search
    SET body = (SELECT lower(coalesce(a.name, '') || char(10) || a.username || char(10) ||
                             coalesce(a.ip_address, '') || char(10) ||
                             coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                                       WHERE e.account_id = a.id), ''))
                FROM accounts a WHERE a.id = account_search.rowid)
    WHERE rowid IN (OLD.account_id, NEW.account_id);
END;

-- `up=` of the /sip listing: the latest expiry of the account's registrations (0: none), kept
-- by triggers, so "live" (some registration expires after now) is `live_until > now` and an
-- index range per customer instead of a registrations probe per account.
ALTER TABLE accounts ADD COLUMN live_until INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET live_until = coalesce((SELECT max(r.expires_at) FROM registrations r
                                           WHERE r.account_id = accounts.id), 0);
CREATE INDEX accounts_customer_live ON accounts (customer_id, live_until);

-- Listings sort by user name, then id; with `live_until` in the index a page of `up=` is read
-- from the index alone. It replaces the index of migration 0005.
DROP INDEX accounts_customer_username;
CREATE INDEX accounts_customer_username_live ON accounts (customer_id, username, id, live_until);

CREATE TRIGGER registrations_live_insert AFTER INSERT ON registrations BEGIN
    UPDATE accounts SET live_until = NEW.expires_at
    WHERE id = NEW.account_id AND live_until < NEW.expires_at;
END;

-- A refresh that extends the expiry (the common case) needs no look at the others.
CREATE TRIGGER registrations_live_extend AFTER UPDATE OF expires_at, account_id ON registrations
WHEN NEW.account_id = OLD.account_id AND NEW.expires_at >= OLD.expires_at
BEGIN
    UPDATE accounts SET live_until = NEW.expires_at
    WHERE id = NEW.account_id AND live_until < NEW.expires_at;
END;

-- A shorter expiry or a move: the newest expiry left, written only when it changes.
CREATE TRIGGER registrations_live_update AFTER UPDATE OF expires_at, account_id ON registrations
WHEN NOT (NEW.account_id = OLD.account_id AND NEW.expires_at >= OLD.expires_at)
BEGIN
    UPDATE accounts
    SET live_until = coalesce((SELECT max(r.expires_at) FROM registrations r
                               WHERE r.account_id = accounts.id), 0)
    WHERE id IN (OLD.account_id, NEW.account_id)
      AND live_until <> coalesce((SELECT max(r.expires_at) FROM registrations r
                                  WHERE r.account_id = accounts.id), 0);
END;

CREATE TRIGGER registrations_live_delete AFTER DELETE ON registrations BEGIN
    UPDATE accounts
    SET live_until = coalesce((SELECT max(r.expires_at) FROM registrations r
                               WHERE r.account_id = OLD.account_id), 0)
    WHERE id = OLD.account_id AND live_until <= OLD.expires_at;
END;
