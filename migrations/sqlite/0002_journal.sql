-- Per-account replication journal (chat history of Blink-style clients). `data` is opaque JSON text.
ALTER TABLE accounts ADD COLUMN journal_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE journal_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    timestamp INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    client_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX journal_account_id ON journal_entries(account_id, id);
CREATE INDEX journal_account_ts ON journal_entries(account_id, timestamp);
