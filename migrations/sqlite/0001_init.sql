-- Times are unix seconds; money is integer ten-thousandths; flags are 0/1.
CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    username TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    -- For clients that send username="user@domain": H(user@domain:realm:password).
    ha1_md5_full TEXT NOT NULL,
    ha1_sha256_full TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    timezone TEXT,
    mobile_number TEXT,
    pstn_caller_id TEXT,
    no_answer_timeout INTEGER NOT NULL DEFAULT 35,
    quick_dial TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    privacy INTEGER NOT NULL DEFAULT 0,
    balance INTEGER NOT NULL DEFAULT 0,
    fwd_func TEXT,
    fwd_fnol TEXT,
    fwd_fbus TEXT,
    fwd_fnoa TEXT,
    fwd_funv TEXT,
    temp_groups TEXT,
    temp_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (domain_id, username)
);

CREATE TABLE aliases (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    username TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (domain_id, username)
);
CREATE INDEX aliases_account ON aliases(account_id);

CREATE TABLE enum_numbers (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    number TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE INDEX enum_numbers_account ON enum_numbers(account_id);

CREATE TABLE registrations (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    public_contact TEXT,
    expires_at INTEGER NOT NULL,
    user_agent TEXT,
    transport TEXT,
    instance_id TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (account_id, contact)
);
CREATE INDEX registrations_expiry ON registrations(account_id, expires_at);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('placed', 'received')),
    remote_party TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    start_time INTEGER NOT NULL,
    stop_time INTEGER,
    duration INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    price INTEGER,
    session_id TEXT NOT NULL,
    from_tag TEXT NOT NULL,
    to_tag TEXT NOT NULL DEFAULT '',
    proxy_ip TEXT NOT NULL DEFAULT '',
    media TEXT NOT NULL DEFAULT 'audio',
    UNIQUE (account_id, session_id, from_tag, direction)
);
CREATE INDEX calls_account_time ON calls(account_id, direction, start_time);

CREATE TABLE balance_history (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    action TEXT NOT NULL,
    description TEXT NOT NULL,
    value INTEGER NOT NULL,
    balance INTEGER NOT NULL,
    session TEXT
);
CREATE INDEX balance_history_account ON balance_history(account_id, id);

CREATE TABLE accept_rules (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    days INTEGER NOT NULL,
    start_time TEXT NOT NULL,
    stop_time TEXT NOT NULL,
    groups TEXT NOT NULL,
    UNIQUE (account_id, days)
);

CREATE TABLE reject_rules (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    UNIQUE (account_id, uri)
);

CREATE TABLE phonebook_entries (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    group_name TEXT NOT NULL
);
CREATE INDEX phonebook_account ON phonebook_entries(account_id);

CREATE TABLE voicemail_boxes (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    mailbox TEXT NOT NULL,
    password_sealed TEXT NOT NULL,
    name TEXT,
    email TEXT,
    info TEXT,
    delete_after_email INTEGER NOT NULL DEFAULT 0,
    vm_account TEXT NOT NULL
);
