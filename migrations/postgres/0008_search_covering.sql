-- A /sip search that matches many accounts is answered from one index: the listing's index
-- (customer, user name) also carries the search text, so both the exact `total` and the page
-- are read from the index alone (no visit to the wide account rows, which a trigram search
-- rechecks one by one). The planner chooses, from its statistics, between this walk (many
-- matches) and the trigram index (few). The text is bounded (name ≤ 255 characters, user name
-- ≤ 64, an IP address, at most 10 E.164 numbers), well within an index entry.
DROP INDEX accounts_customer_username_c;
CREATE INDEX accounts_customer_username_search ON accounts (customer_id, username COLLATE "C", id)
    INCLUDE (live_until, search_text);

-- The notes (searched by some roles only) are not in that index: a search looks them up
-- apart, among the accounts that have notes.
CREATE INDEX accounts_with_notes ON accounts (id) WHERE notes IS NOT NULL;
