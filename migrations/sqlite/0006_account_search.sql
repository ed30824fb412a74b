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
