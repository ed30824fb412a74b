-- A /sip search that matches many accounts is answered from one index: the account row keeps
-- its search text (the same text as `account_search.body`, migration 0006), and the listing's
-- index (customer, user name) carries it, so both the exact `total` and the page are read from
-- the index alone instead of joining every match of the trigram table back to its account.
ALTER TABLE accounts ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

-- The text of an account, written once: every trigger below reads it from here.
CREATE VIEW account_search_text AS
SELECT a.id AS id,
       lower(coalesce(a.name, '') || char(10) || a.username || char(10) ||
             coalesce(a.ip_address, '') || char(10) ||
             coalesce((SELECT group_concat(e.number, char(10)) FROM enum_numbers e
                       WHERE e.account_id = a.id), '')) AS text
FROM accounts a;

UPDATE accounts SET search_text = (SELECT t.text FROM account_search_text t WHERE t.id = accounts.id);

DROP INDEX accounts_customer_username_live;
CREATE INDEX accounts_customer_username_search
    ON accounts (customer_id, username, id, live_until, search_text);

CREATE TRIGGER accounts_search_text_insert AFTER INSERT ON accounts BEGIN
    UPDATE accounts SET search_text = (SELECT t.text FROM account_search_text t WHERE t.id = accounts.id)
    WHERE id = NEW.id;
END;

CREATE TRIGGER accounts_search_text_update AFTER UPDATE OF name, username, ip_address ON accounts
BEGIN
    UPDATE accounts SET search_text = (SELECT t.text FROM account_search_text t WHERE t.id = accounts.id)
    WHERE id = NEW.id;
END;

CREATE TRIGGER accounts_search_text_enum_insert AFTER INSERT ON enum_numbers BEGIN
    UPDATE accounts SET search_text = (SELECT t.text FROM account_search_text t WHERE t.id = accounts.id)
    WHERE id = NEW.account_id;
END;

CREATE TRIGGER accounts_search_text_enum_delete AFTER DELETE ON enum_numbers BEGIN
    UPDATE accounts SET search_text = (SELECT t.text FROM account_search_text t WHERE t.id = accounts.id)
    WHERE id = OLD.account_id;
END;

CREATE TRIGGER accounts_search_text_enum_update AFTER UPDATE OF account_id, number ON enum_numbers
BEGIN
    UPDATE accounts SET search_text = (SELECT t.text FROM account_search_text t WHERE t.id = accounts.id)
    WHERE id IN (OLD.account_id, NEW.account_id);
END;
